package ecrapi

import (
	"net/http"

	"github.com/cofferhq/coffer/internal/auth"
)

// registryOps describe the registry itself.
var registryOps = map[string]op{
	"DescribeRegistry": (*Handler).describeRegistry,
}

func init() { opGroups = append(opGroups, registryOps) }

// describeRegistry answers with the registry's ID (its account) and its
// replication configuration, which is empty: Coffer does not replicate
// (PutReplicationConfiguration is not implemented).
func (h *Handler) describeRegistry(r *http.Request, info *auth.Info, body []byte) (any, error) {
	if err := parseNoMembers(body); err != nil {
		return nil, err
	}
	if err := h.authorizeRepo(r.Context(), info, "ecr:DescribeRegistry", "*"); err != nil {
		return nil, err
	}
	type replicationRule struct{} // never instantiated: no rules
	return struct {
		RegistryID               string `json:"registryId"`
		ReplicationConfiguration struct {
			Rules []replicationRule `json:"rules"`
		} `json:"replicationConfiguration"`
	}{RegistryID: h.cfg.Registry.AccountID(), ReplicationConfiguration: struct {
		Rules []replicationRule `json:"rules"`
	}{Rules: []replicationRule{}}}, nil
}
