package iamapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/iam"
)

// Config configures a Handler.
type Config struct {
	// IAM is the identity store the operations act on.
	IAM *iam.Service
	// Authz decides every IAM operation (iam:<Action> on AWS's resource ARN).
	Authz auth.Authorizer
	// Trust decides AssumeRole: the role's trust policy and the caller's
	// identity policies. The handler does not authorize AssumeRole again.
	Trust iam.Trust
	// Log receives unexpected failures (never request forms or responses).
	Log *slog.Logger
	// Now is the clock for the expiry check of temporary credentials; nil
	// means time.Now.
	Now func() time.Time
}

// Handler serves the IAM and STS Query APIs.
type Handler struct {
	iam   *iam.Service
	authz auth.Authorizer
	trust iam.Trust
	log   *slog.Logger
	now   func() time.Time
	iamS  *service
	stsS  *service
}

// service is one Query API: its version, XML namespace and operations.
type service struct {
	name    string // "iam" or "sts": the action prefix
	label   string // "IAM" or "STS", for messages
	version string
	ns      string
	ops     map[string]op
	model   map[string]bool // every action in the botocore model
}

// op is one implemented operation: the required top-level members (as in
// the botocore input shape) and the function that serves it.
type op struct {
	required []string
	serve    func(ctx context.Context, c *call) (any, error)
}

// call is one request being served.
type call struct {
	info   *auth.Info
	q      query
	action string
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	var errs []error
	if cfg.IAM == nil {
		errs = append(errs, errors.New("iamapi: Config.IAM is required"))
	}
	if cfg.Authz == nil {
		errs = append(errs, errors.New("iamapi: Config.Authz is required"))
	}
	if cfg.Trust == nil {
		errs = append(errs, errors.New("iamapi: Config.Trust is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &Handler{iam: cfg.IAM, authz: cfg.Authz, trust: cfg.Trust, log: cfg.Log, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.iamS = &service{name: "iam", label: "IAM", version: "2010-05-08",
		ns: "https://iam.amazonaws.com/doc/2010-05-08/", ops: h.iamOps(), model: iamModelActions}
	h.stsS = &service{name: "sts", label: "STS", version: "2011-06-15",
		ns: "https://sts.amazonaws.com/doc/2011-06-15/", ops: h.stsOps(), model: stsModelActions}
	return h, nil
}

// ServeIAM handles one authenticated IAM Query request (SigV4 for service
// "iam" already verified; auth.Info in the context).
func (h *Handler) ServeIAM(w http.ResponseWriter, r *http.Request) { h.serve(w, r, h.iamS) }

// ServeSTS handles one authenticated STS Query request.
func (h *Handler) ServeSTS(w http.ResponseWriter, r *http.Request) { h.serve(w, r, h.stsS) }

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, svc *service) {
	ctx := r.Context()
	info := auth.FromContext(ctx)
	reqID := ""
	if info != nil {
		reqID = info.RequestID
	}
	w.Header().Set("x-amzn-RequestId", reqID)
	action, result, err := h.dispatch(ctx, w, r, svc, info)
	var body []byte
	if err == nil {
		body, err = encodeResponse(svc.ns, action, reqID, result)
	}
	if err != nil {
		h.writeError(ctx, w, svc, info, action, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (h *Handler) dispatch(ctx context.Context, w http.ResponseWriter, r *http.Request, svc *service, info *auth.Info) (string, any, error) {
	if info == nil {
		return "", nil, errors.New("iamapi: request without auth.Info (pipeline not in front)")
	}
	q, err := readQuery(w, r)
	if err != nil {
		return "", nil, err
	}
	action := q.str("Action")
	if action == "" {
		return "", nil, newError("MissingAction", http.StatusBadRequest, "The request must contain the parameter Action.")
	}
	version := q.str("Version")
	if version == "" {
		version = "NO_VERSION_SPECIFIED"
	}
	o, ok := svc.ops[action]
	switch {
	case version != svc.version || (!ok && !svc.model[action]):
		return "", nil, newError("InvalidAction", http.StatusBadRequest, "Could not find operation %s for version %s", printable(action), printable(version))
	case !ok:
		return "", nil, newError("InvalidAction", http.StatusBadRequest, "Coffer does not implement the %s action %s yet", svc.label, action)
	}
	info.Action = svc.name + ":" + action
	info.EventName = action
	info.Params = auditParams(q)
	if p := info.Principal; !p.Expires.IsZero() && !h.now().Before(p.Expires) {
		return action, nil, newError("ExpiredToken", http.StatusForbidden, "The security token included in the request is expired")
	}
	if err := q.required(o.required...); err != nil {
		return action, nil, err
	}
	result, err := o.serve(ctx, &call{info: info, q: q, action: action})
	return action, result, err
}

// auditParams are the request's top-level parameters for the audit record
// (CloudTrail's requestParameters). IAM and STS inputs carry no secrets
// except MFA codes, which are left out.
func auditParams(q query) map[string]any {
	params := make(map[string]any)
	for k, v := range q.v {
		switch {
		case k == "Action" || k == "Version" || k == "TokenCode" || k == "SerialNumber":
		case strings.HasPrefix(k, "X-Amz-") || strings.Contains(k, "."):
		default:
			params[lowerFirst(k)] = v
		}
	}
	return params
}

func (h *Handler) writeError(ctx context.Context, w http.ResponseWriter, svc *service, info *auth.Info, action string, err error) {
	e, internal := toAPIError(err, svc)
	reqID := ""
	if info != nil {
		reqID = info.RequestID
		info.ErrorCode, info.ErrorMessage = e.code, e.msg
	}
	if internal {
		h.log.ErrorContext(ctx, "iamapi: request failed", "request_id", reqID, "service", svc.name, "action", action, "error", err)
	}
	body := encodeError(svc.ns, reqID, e)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// authorize asks the decision point for iam:<action> on resource and
// records the resource for the audit hook.
func (h *Handler) authorize(ctx context.Context, c *call, resource string) error {
	c.info.Resources = append(c.info.Resources, resource)
	return h.authz.Authorize(ctx, c.info, c.info.Action, resource)
}

// arn returns arn:aws:iam::<account>:<kind><path><name>.
func (h *Handler) arn(kind, path, name string) string {
	if path == "" {
		path = "/"
	}
	return "arn:aws:iam::" + h.iam.AccountID() + ":" + kind + path + name
}

// entityARN is the ARN to authorize an operation on an existing user,
// group or role: its real ARN (with its path), or the path-less ARN when
// it does not exist. The decision comes before NoSuchEntity, so a denied
// caller learns nothing about existence.
func (h *Handler) entityARN(ctx context.Context, kind, name string) (string, error) {
	var (
		arn string
		err error
	)
	switch kind {
	case "user":
		var u iam.User
		u, err = h.iam.GetUser(ctx, name)
		arn = u.ARN
	case "group":
		var g iam.Group
		g, _, err = h.iam.GetGroup(ctx, name)
		arn = g.ARN
	case "role":
		var r iam.Role
		r, err = h.iam.GetRole(ctx, name)
		arn = r.ARN
	}
	if errors.Is(err, iam.ErrNoSuchEntity) {
		return h.arn(kind, "/", name), nil
	}
	return arn, err
}

// authorizeEntity resolves an existing entity's ARN and authorizes on it.
func (h *Handler) authorizeEntity(ctx context.Context, c *call, kind, name string) error {
	arn, err := h.entityARN(ctx, kind, name)
	if err != nil {
		return err
	}
	return h.authorize(ctx, c, arn)
}

var (
	pathRE   = regexp.MustCompile(`^(/|/[\x21-\x7e]*/)$`) // pathType
	prefixRE = regexp.MustCompile(`^/[\x21-\x7e]*$`)      // pathPrefixType
)

// pathParam returns an optional Path or PathPrefix parameter ("/" when
// absent), checked against the model's pattern before it goes into an
// ARN.
func pathParam(q query, name string) (string, error) {
	p := q.str(name)
	if p == "" {
		return "/", nil
	}
	re, rule := pathRE, "begin and end with /"
	if strings.HasSuffix(name, "Prefix") {
		re, rule = prefixRE, "begin with /"
	}
	if len(p) > 512 || !re.MatchString(p) {
		return "", validationError("The specified value for %s is invalid. It must %s, be at most 512 characters and contain only printable ASCII characters.", lowerFirst(name), rule)
	}
	return p, nil
}
