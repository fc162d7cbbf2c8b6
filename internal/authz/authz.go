// Package authz is Coffer's decision point: it implements auth.Authorizer
// by gathering what the policy evaluator needs (the principal's identity
// policies from IAM, the repository and registry policies, the request
// context keys) and asking internal/policy for AWS's decision.
//
// It does I/O (reads policies) but decides nothing itself: policy.Decide
// does. Denials carry AWS's AccessDenied wording.
package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/cache"
	"github.com/cofferhq/coffer/internal/policy"
)

// Document kinds of the resource policies this package reads; the ECR API
// writes them (SetRepositoryPolicy, PutRegistryPolicy).
const (
	KindRepositoryPolicy = "ecr.repositorypolicy" // key: repository name
	KindRegistryPolicy   = "ecr.registrypolicy"   // key: "registry"
	// KindRepositoryTags holds a repository's resource tags (key:
	// repository name; JSON [{"Key","Value"}]): aws:ResourceTag/<key>.
	KindRepositoryTags = "ecr.tags"
)

// Config configures an Authorizer.
type Config struct {
	IAM       *iam.Service
	Docs      metadata.DocStore
	AccountID string
	Region    string
	// EndpointPolicies are the endpoint policies by endpoint ID: a request
	// that arrived through an endpoint must also be allowed by its policy
	// (SPEC EPOL-03), a gate beside identity and resource policies.
	EndpointPolicies map[string]*policy.Policy
	Now              func() time.Time
	// Generation and CacheTTL, when both set, cache each repository's
	// parsed resource policies and tags: an entry is used while
	// Generation returns what it returned before the entry's read, and
	// for less than CacheTTL. Generation must change after every write
	// of a repository policy, the registry policy or repository tags
	// (metadata/cache.Store.Generation does, for writes through it), so
	// such a write is honoured at the next request; CacheTTL bounds how
	// long writes it does not see (other processes) go unnoticed.
	Generation func() uint64
	CacheTTL   time.Duration
}

// Authorizer is the decision point.
type Authorizer struct {
	cfg Config
	now func() time.Time
	// repoPrefix is the ARN of the account's repositories up to the name.
	repoPrefix string
	// resources caches resourcePolicies by repository name; nil when
	// caching is off. Nothing KMS-related is cached here: key policies
	// and grants are decided by internal/kms at each use.
	resources *cache.Map[string, resourceSet]
	// lastTimes is the formatted time of the latest decision's second.
	lastTimes atomic.Pointer[timeStrings]
}

// resourceSet is what resourcePolicies returns for one repository. Its
// policies and tags are shared by every request that uses the entry and
// must not be modified.
type resourceSet struct {
	policies []*policy.Policy
	tags     map[string]string
}

// resourceCacheSize bounds the repositories whose policies are cached.
const resourceCacheSize = cache.DefaultMaxEntries

// New returns an Authorizer.
func New(cfg Config) (*Authorizer, error) {
	if cfg.IAM == nil || cfg.Docs == nil || cfg.AccountID == "" {
		return nil, errors.New("authz: IAM, Docs and AccountID are required")
	}
	a := &Authorizer{cfg: cfg, now: cfg.Now, repoPrefix: "arn:aws:ecr:" + cfg.Region + ":" + cfg.AccountID + ":repository/"}
	if a.now == nil {
		a.now = time.Now
	}
	if cfg.Generation != nil && cfg.CacheTTL > 0 {
		a.resources = cache.NewMap[string, resourceSet](resourceCacheSize)
	}
	return a, nil
}

// Authorize implements auth.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, info *auth.Info, action, resource string) error {
	p := info.Principal
	if p.Type == "" || p.Type == auth.Anonymous.Type {
		return &auth.DeniedError{Principal: "anonymous", Action: action, Resource: resource,
			Reason: "because no identity-based policy allows the " + action + " action"}
	}
	identity, err := a.cfg.IAM.IdentityPolicies(ctx, p)
	if err != nil {
		return fmt.Errorf("authz: identity policies: %w", err)
	}
	resourcePolicies, resourceTags, err := a.resourcePolicies(ctx, resource)
	if err != nil {
		return fmt.Errorf("authz: resource policies: %w", err)
	}
	gates, err := a.gates(info)
	if err != nil {
		return err
	}
	// The request context is built only when a policy can read it: most
	// decisions (the managed policies, conditionless repository policies)
	// come out the same without, and building it costs more than deciding.
	var reqContext policy.Context
	if usesContext(identity, resourcePolicies, gates) {
		reqContext = a.contextWithTags(info, resourceTags)
	}
	d := policy.Decide(policy.Input{
		Request: &policy.Request{
			Principal: policy.Principal{ARN: p.ARN, Account: p.AccountID, Type: p.Type, RoleARN: p.RoleARN},
			Action:    action,
			Resource:  resource,
			Context:   reqContext,
		},
		ResourceAccount: a.cfg.AccountID,
		Identity:        identity,
		Resource:        resourcePolicies,
		Gates:           gates,
	})
	if reqContext != nil {
		releaseContext(reqContext)
	}
	if !d.Allowed {
		return &auth.DeniedError{Principal: p.ARN, Action: action, Resource: resource, Reason: d.Reason}
	}
	return nil
}

// usesContext reports whether any of the policies of a decision can read
// the request context (policy.Policy.UsesContext).
func usesContext(identity, resource []*policy.Policy, gates []policy.Gate) bool {
	for _, ps := range [][]*policy.Policy{identity, resource} {
		for _, p := range ps {
			if p.UsesContext() {
				return true
			}
		}
	}
	for _, g := range gates {
		for _, p := range g.Policies {
			if p.UsesContext() {
				return true
			}
		}
	}
	return false
}

// gates returns the endpoint policy of the endpoint the request arrived
// through, if any.
func (a *Authorizer) gates(info *auth.Info) ([]policy.Gate, error) {
	if info.EndpointID == "" {
		return nil, nil
	}
	ep, ok := a.cfg.EndpointPolicies[info.EndpointID]
	if !ok {
		return nil, fmt.Errorf("authz: unknown endpoint %s", info.EndpointID)
	}
	return []policy.Gate{{Name: "VPC endpoint policy", Policies: []*policy.Policy{ep}}}, nil
}

// resourcePolicies returns the repository policy of an ECR repository ARN
// and the registry policy, as they exist, and the repository's tags, read
// in one snapshot; from the cache when it is on and the entry is current.
// The results must not be modified.
func (a *Authorizer) resourcePolicies(ctx context.Context, resource string) ([]*policy.Policy, map[string]string, error) {
	name, ok := strings.CutPrefix(resource, a.repoPrefix)
	if !ok {
		return nil, nil, nil
	}
	if a.resources == nil {
		return a.readResourcePolicies(ctx, name)
	}
	gen, now := a.cfg.Generation(), time.Now()
	if rs, ok := a.resources.Get(name, gen, now, a.cfg.CacheTTL); ok {
		return rs.policies, rs.tags, nil
	}
	pols, tags, err := a.readResourcePolicies(ctx, name)
	if err == nil {
		a.resources.Put(name, resourceSet{policies: pols, tags: tags}, gen, now)
	}
	return pols, tags, err
}

// readResourcePolicies reads and parses the policies and tags of the
// repository name ("*" for none: the registry policy only).
func (a *Authorizer) readResourcePolicies(ctx context.Context, name string) ([]*policy.Policy, map[string]string, error) {
	var (
		docs [][]byte
		tags map[string]string
	)
	err := a.cfg.Docs.ViewDocs(ctx, func(tx metadata.DocTx) error {
		for _, k := range [][2]string{{KindRepositoryPolicy, name}, {KindRegistryPolicy, "registry"}} {
			if k[1] == "*" {
				continue
			}
			d, err := tx.Get(k[0], k[1])
			if errors.Is(err, metadata.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			docs = append(docs, d.Data)
		}
		if name == "*" {
			return nil
		}
		d, err := tx.Get(KindRepositoryTags, name)
		if errors.Is(err, metadata.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var list []struct{ Key, Value string }
		if err := json.Unmarshal(d.Data, &list); err != nil {
			return fmt.Errorf("tags of %s: %w", name, err)
		}
		tags = make(map[string]string, len(list))
		for _, t := range list {
			tags[t.Key] = t.Value
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	out := make([]*policy.Policy, 0, len(docs))
	for _, d := range docs {
		pol, err := policy.Parse(d, policy.Resource)
		if err != nil {
			return nil, nil, fmt.Errorf("stored resource policy does not parse: %w", err)
		}
		out = append(out, pol)
	}
	return out, tags, nil
}

// contextWithTags adds the tag condition keys to the request context:
// aws:ResourceTag/<key> and ecr:ResourceTag/<key> for the resource's tags,
// aws:RequestTag/<key> and aws:TagKeys for a tagging request's tags.
func (a *Authorizer) contextWithTags(info *auth.Info, resourceTags map[string]string) policy.Context {
	c := a.context(info, 2*len(resourceTags)+len(info.RequestTags)+1)
	for k, v := range resourceTags {
		c.Set("aws:ResourceTag/"+k, v)
		c.Set("ecr:ResourceTag/"+k, v)
	}
	if len(info.RequestTags) > 0 || len(info.RequestTagKeys) > 0 {
		keys := slices.Clone(info.RequestTagKeys)
		for k, v := range info.RequestTags {
			keys = append(keys, k)
			c.Set("aws:RequestTag/"+k, v)
		}
		slices.Sort(keys)
		c.Set("aws:TagKeys", slices.Compact(keys)...)
	}
	return c
}

// The global condition keys, as policy.Context keeps them (lower case).
const (
	keySourceIP        = "aws:sourceip"
	keySecureTransport = "aws:securetransport"
	keyCurrentTime     = "aws:currenttime"
	keyEpochTime       = "aws:epochtime"
	keyPrincipalArn    = "aws:principalarn"
	keyPrincipalAcct   = "aws:principalaccount"
	keyPrincipalType   = "aws:principaltype"
	keyUserID          = "aws:userid"
	keyUsername        = "aws:username"
	keyUserAgent       = "aws:useragent"
	keyRequestedRegion = "aws:requestedregion"
	keyMFAPresent      = "aws:multifactorauthpresent"
	keySourceVpce      = "aws:sourcevpce"
	keySourceVpc       = "aws:sourcevpc"
	globalKeys         = 14
)

// context returns the global condition keys of a request, in a Context
// with room for extra more keys. It is built for every decision, so it
// costs one map and one slice: the keys are already lower case and the
// values share one backing array (each value slice is capped, so an Add
// to it copies rather than overwrites a neighbour).
func (a *Authorizer) context(info *auth.Info, extra int) policy.Context {
	now := info.Time
	if now.IsZero() {
		now = a.now()
	}
	p := info.Principal
	var c policy.Context
	if extra <= pooledContextKeys-globalKeys {
		c = contextPool.Get().(policy.Context)
	} else {
		c = make(policy.Context, globalKeys+extra)
	}
	vals := make([]string, 0, globalKeys)
	set := func(k, v string) {
		if v != "" {
			vals = append(vals, v)
			n := len(vals)
			c[k] = vals[n-1 : n : n]
		}
	}
	if info.SourceIP.IsValid() {
		set(keySourceIP, info.SourceIP.String())
	}
	set(keySecureTransport, strconv.FormatBool(info.SecureTransport))
	ts := a.times(now)
	set(keyCurrentTime, ts.rfc3339)
	set(keyEpochTime, ts.epoch)
	set(keyPrincipalArn, principalARN(p))
	set(keyPrincipalAcct, p.AccountID)
	set(keyPrincipalType, principalType(p))
	set(keyUserID, p.PrincipalID)
	set(keyUsername, p.UserName)
	set(keyUserAgent, info.UserAgent)
	set(keyRequestedRegion, a.cfg.Region)
	set(keyMFAPresent, "false")
	set(keySourceVpce, info.EndpointID)
	set(keySourceVpc, info.VPCID)
	return c
}

// Request contexts are pooled: a map of a few dozen keys costs more to
// allocate than the rest of a decision. policy.Decide keeps nothing of
// its input, so a context is released as soon as Decide returns.
const pooledContextKeys = 32

var contextPool = sync.Pool{New: func() any { return make(policy.Context, pooledContextKeys) }}

func releaseContext(c policy.Context) {
	if len(c) <= pooledContextKeys {
		clear(c)
		contextPool.Put(c)
	}
}

// timeStrings are aws:CurrentTime and aws:EpochTime of one second.
type timeStrings struct {
	sec            int64
	rfc3339, epoch string
}

// times returns the time keys' values for now, formatted once per second.
func (a *Authorizer) times(now time.Time) *timeStrings {
	sec := now.Unix()
	if ts := a.lastTimes.Load(); ts != nil && ts.sec == sec {
		return ts
	}
	ts := &timeStrings{sec: sec, rfc3339: now.UTC().Format(time.RFC3339), epoch: strconv.FormatInt(sec, 10)}
	a.lastTimes.Store(ts)
	return ts
}

// principalARN is aws:PrincipalArn: for a role session, the role's ARN.
func principalARN(p auth.Principal) string {
	if p.RoleARN != "" {
		return p.RoleARN
	}
	return p.ARN
}

func principalType(p auth.Principal) string {
	switch p.Type {
	case "IAMUser":
		return "User"
	case "AssumedRole":
		return "AssumedRole"
	case "Root":
		return "Account"
	}
	return p.Type
}
