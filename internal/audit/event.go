package audit

import (
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cofferhq/coffer/internal/auth"
)

// EventVersion is the CloudTrail record format version Coffer writes.
const EventVersion = "1.11"

// Event types (eventType).
const (
	EventTypeAPICall      = "AwsApiCall"
	EventTypeServiceEvent = "AwsServiceEvent"
)

// timeFormat is CloudTrail's eventTime: UTC, second precision.
const timeFormat = "2006-01-02T15:04:05Z"

// Event is one CloudTrail record, as it appears in log files and, as a
// JSON string, in LookupEvents' CloudTrailEvent. Field order and names
// follow the CloudTrail User Guide's "record contents".
type Event struct {
	EventVersion        string       `json:"eventVersion"`
	UserIdentity        UserIdentity `json:"userIdentity"`
	EventTime           string       `json:"eventTime"`
	EventSource         string       `json:"eventSource"`
	EventName           string       `json:"eventName"`
	AWSRegion           string       `json:"awsRegion"`
	SourceIPAddress     string       `json:"sourceIPAddress"`
	UserAgent           string       `json:"userAgent"`
	ErrorCode           string       `json:"errorCode,omitempty"`
	ErrorMessage        string       `json:"errorMessage,omitempty"`
	RequestParameters   any          `json:"requestParameters"`
	ResponseElements    any          `json:"responseElements"`
	RequestID           string       `json:"requestID,omitempty"`
	EventID             string       `json:"eventID"`
	ReadOnly            bool         `json:"readOnly"`
	Resources           []Resource   `json:"resources,omitempty"`
	EventType           string       `json:"eventType"`
	ManagementEvent     bool         `json:"managementEvent"`
	RecipientAccountID  string       `json:"recipientAccountId"`
	ServiceEventDetails any          `json:"serviceEventDetails,omitempty"`
	VPCEndpointID       string       `json:"vpcEndpointId,omitempty"`
	EventCategory       string       `json:"eventCategory"`
	TLSDetails          *TLSDetails  `json:"tlsDetails,omitempty"`
}

// UserIdentity is the record's caller.
type UserIdentity struct {
	// Type is Root, IAMUser, AssumedRole, AWSAccount (anonymous) or
	// AWSService (a service on its own: eventType AwsServiceEvent).
	Type           string          `json:"type"`
	PrincipalID    string          `json:"principalId,omitempty"`
	ARN            string          `json:"arn,omitempty"`
	AccountID      string          `json:"accountId,omitempty"`
	AccessKeyID    string          `json:"accessKeyId,omitempty"`
	UserName       string          `json:"userName,omitempty"`
	SessionContext *SessionContext `json:"sessionContext,omitempty"`
	InvokedBy      string          `json:"invokedBy,omitempty"`
}

// SessionContext describes temporary credentials.
type SessionContext struct {
	SessionIssuer *SessionIssuer `json:"sessionIssuer,omitempty"`
}

// SessionIssuer is the role an assumed-role session belongs to.
type SessionIssuer struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
	ARN         string `json:"arn"`
	AccountID   string `json:"accountId"`
	UserName    string `json:"userName"`
}

// Resource is one entry of the record's resources.
type Resource struct {
	ARN       string `json:"ARN"`
	AccountID string `json:"accountId,omitempty"`
	Type      string `json:"type,omitempty"`
}

// TLSDetails is the record's tlsDetails.
type TLSDetails struct {
	TLSVersion               string `json:"tlsVersion,omitempty"`
	CipherSuite              string `json:"cipherSuite,omitempty"`
	ClientProvidedHostHeader string `json:"clientProvidedHostHeader,omitempty"`
}

// NewEvent builds the record of one request: info says who did what from
// where, out how it ended. region and accountID are the registry's own
// (awsRegion, recipientAccountId); now stamps an Info without a time.
// Request parameters and response elements pass through Scrub.
func NewEvent(info *auth.Info, out Outcome, region, accountID string, now time.Time) *Event {
	if info == nil {
		info = &auth.Info{Principal: auth.Anonymous}
	}
	t := info.Time
	if t.IsZero() {
		t = now
	}
	source, name := sourceAndName(info.Action, info.EventName)
	ev := &Event{
		EventVersion:       EventVersion,
		UserIdentity:       userIdentity(info),
		EventTime:          eventTime(t),
		EventSource:        source,
		EventName:          name,
		AWSRegion:          region,
		SourceIPAddress:    sourceIP(info),
		UserAgent:          info.UserAgent,
		RequestID:          info.RequestID,
		EventID:            newEventID(),
		ReadOnly:           IsReadOnly(source, name),
		Resources:          resources(info.Resources),
		EventType:          EventTypeAPICall,
		ManagementEvent:    true,
		RecipientAccountID: accountID,
		VPCEndpointID:      info.EndpointID,
		EventCategory:      "Management",
	}
	if info.InvokedBy != "" {
		ev.UserAgent = info.InvokedBy
	}
	switch {
	case info.EventType != "":
		ev.EventType = info.EventType
	case info.Principal.Type == "AWSService":
		// A service acting on its own, not for a caller.
		ev.EventType = EventTypeServiceEvent
	}
	if p := Scrub(info.Params); p != nil {
		ev.RequestParameters = p
	}
	if r := Scrub(info.ResponseElements); r != nil {
		ev.ResponseElements = r
	}
	if d := Scrub(info.ServiceEventDetails); d != nil {
		ev.ServiceEventDetails = d
	}
	ev.ErrorCode, ev.ErrorMessage = out.ErrorCode, out.ErrorMessage
	if ev.ErrorCode == "" {
		ev.ErrorCode, ev.ErrorMessage = info.ErrorCode, info.ErrorMessage
	}
	if ev.ErrorCode == "" && out.Status >= 400 {
		// A door that failed without naming an error still fails the
		// record: the status text stands in for the code.
		ev.ErrorCode = strings.ReplaceAll(http.StatusText(out.Status), " ", "")
		if ev.ErrorCode == "" {
			ev.ErrorCode = "HTTPStatus" + strconv.Itoa(out.Status)
		}
	}
	if info.SecureTransport || info.TLSVersion != "" {
		ev.TLSDetails = &TLSDetails{
			TLSVersion:               tlsVersion(info.TLSVersion),
			CipherSuite:              info.TLSCipherSuite,
			ClientProvidedHostHeader: info.Host,
		}
	}
	return ev
}

// services maps an action's prefix to its eventSource.
var services = map[string]string{
	"ecr":        "ecr.amazonaws.com",
	"kms":        "kms.amazonaws.com",
	"iam":        "iam.amazonaws.com",
	"sts":        "sts.amazonaws.com",
	"cloudtrail": "cloudtrail.amazonaws.com",
}

// sourceAndName derives eventSource and eventName from the action
// ("ecr:PutImage"). A request that ended before its door named the action
// is an ECR request of unknown name: Coffer is a registry first.
func sourceAndName(action, eventName string) (source, name string) {
	svc, op, ok := strings.Cut(action, ":")
	if !ok {
		svc, op = "", action
	}
	source = services[svc]
	if source == "" && svc != "" {
		source = svc + ".amazonaws.com"
	}
	if source == "" {
		source = services["ecr"]
	}
	name = eventName
	if name == "" {
		name = op
	}
	if name == "" {
		name = "Unknown"
	}
	return source, name
}

// readOnlyPrefixes mark read-only event names in every service.
var readOnlyPrefixes = []string{"Get", "List", "Describe", "BatchGet", "BatchCheck", "Lookup"}

// kmsReadOnly are the KMS operations CloudTrail marks read-only although
// their names do not say so.
var kmsReadOnly = map[string]bool{
	"Decrypt": true, "Encrypt": true, "GenerateDataKey": true, "GenerateDataKeyWithoutPlaintext": true,
	"GenerateDataKeyPair": true, "GenerateDataKeyPairWithoutPlaintext": true, "GenerateRandom": true,
	"ReEncrypt": true, "Sign": true, "Verify": true, "GenerateMac": true, "VerifyMac": true,
}

// IsReadOnly reports whether an event only reads: Get*, List*, Describe*,
// BatchGet*, BatchCheck*, Lookup*, and KMS's cryptographic operations.
func IsReadOnly(source, name string) bool {
	for _, p := range readOnlyPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return source == services["kms"] && kmsReadOnly[name]
}

func userIdentity(info *auth.Info) UserIdentity {
	p := info.Principal
	var id UserIdentity
	switch p.Type {
	case "", auth.Anonymous.Type:
		// CloudTrail's form for anonymous callers.
		id = UserIdentity{Type: "AWSAccount", AccountID: "ANONYMOUS_PRINCIPAL"}
	case "AWSService":
		svc := info.InvokedBy
		if svc == "" {
			svc = p.PrincipalID
		}
		id = UserIdentity{Type: p.Type, AccountID: p.AccountID, InvokedBy: svc}
	case "AssumedRole":
		id = UserIdentity{Type: p.Type, PrincipalID: p.PrincipalID, ARN: p.ARN, AccountID: p.AccountID, AccessKeyID: p.AccessKeyID}
		if p.RoleARN != "" {
			roleID, _, _ := strings.Cut(p.PrincipalID, ":")
			id.SessionContext = &SessionContext{SessionIssuer: &SessionIssuer{
				Type: "Role", PrincipalID: roleID, ARN: p.RoleARN, AccountID: p.AccountID,
				UserName: p.RoleARN[strings.LastIndexByte(p.RoleARN, '/')+1:],
			}}
		}
	default:
		id = UserIdentity{Type: p.Type, PrincipalID: p.PrincipalID, ARN: p.ARN, AccountID: p.AccountID,
			AccessKeyID: p.AccessKeyID, UserName: p.UserName}
	}
	if info.InvokedBy != "" {
		id.InvokedBy = info.InvokedBy
	}
	return id
}

// sourceIP is the client's address, or the service's name for a call a
// service made on the principal's behalf (as CloudTrail writes it).
func sourceIP(info *auth.Info) string {
	if info.InvokedBy != "" {
		return info.InvokedBy
	}
	if info.Principal.Type == "AWSService" && info.Principal.PrincipalID != "" {
		return info.Principal.PrincipalID
	}
	if info.SourceIP.IsValid() {
		return info.SourceIP.String()
	}
	return ""
}

// resources turns ARNs into the record's resources, without duplicates
// and without wildcards.
func resources(arns []string) []Resource {
	var out []Resource
	for _, a := range arns {
		if !strings.HasPrefix(a, "arn:") || slices.ContainsFunc(out, func(r Resource) bool { return r.ARN == a }) {
			continue
		}
		typ, _ := ResourceTypeAndName(a)
		acct := ""
		if parts, ok := arnParts(a); ok {
			acct = parts[4]
		}
		out = append(out, Resource{ARN: a, AccountID: acct, Type: typ})
	}
	return out
}

// arnParts splits an ARN into its six colon-separated fields (the last
// keeps its colons), without allocating.
func arnParts(arn string) (parts [6]string, ok bool) {
	rest := arn
	for i := range 5 {
		j := strings.IndexByte(rest, ':')
		if j < 0 {
			return parts, false
		}
		parts[i], rest = rest[:j], rest[j+1:]
	}
	parts[5] = rest
	return parts, true
}

// ResourceTypeAndName returns the CloudFormation-style type of an ARN
// ("AWS::ECR::Repository") and the name LookupEvents reports for it: the
// repository name, the IAM entity name, the whole ARN for a KMS key.
func ResourceTypeAndName(arn string) (typ, name string) {
	parts, ok := arnParts(arn)
	if !ok {
		return "", arn
	}
	svc, res := parts[2], parts[5]
	kind, rest, hasSlash := strings.Cut(res, "/")
	last := res[strings.LastIndexByte(res, '/')+1:]
	switch svc {
	case "ecr":
		switch kind {
		case "repository":
			return "AWS::ECR::Repository", rest
		case "registry":
			return "AWS::ECR::Registry", rest
		}
		return "AWS::ECR::" + upperFirst(kind), rest
	case "kms":
		switch kind {
		case "key":
			return "AWS::KMS::Key", arn
		case "alias":
			return "AWS::KMS::Alias", res
		}
		return "AWS::KMS::" + upperFirst(kind), arn
	case "iam":
		switch kind {
		case "user", "role", "group", "policy":
			return "AWS::IAM::" + upperFirst(kind), last
		case "root":
			return "AWS::IAM::Root", parts[4]
		}
		return "AWS::IAM::" + upperFirst(kind), last
	case "sts":
		if kind == "assumed-role" {
			return "AWS::STS::AssumedRole", rest
		}
		return "AWS::STS::" + upperFirst(kind), rest
	case "s3":
		if hasSlash {
			return "AWS::S3::Object", res
		}
		return "AWS::S3::Bucket", res
	case "cloudtrail":
		return "AWS::CloudTrail::" + upperFirst(kind), rest
	}
	if !hasSlash {
		return "AWS::" + strings.ToUpper(svc), res
	}
	return "AWS::" + strings.ToUpper(svc) + "::" + upperFirst(kind), rest
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// tlsVersion writes crypto/tls's "TLS 1.3" as CloudTrail's "TLSv1.3".
func tlsVersion(v string) string {
	if rest, ok := strings.CutPrefix(v, "TLS "); ok {
		return "TLSv" + rest
	}
	return v
}

// lookupUsername is LookupEvents' Username of a record: the IAM user's
// name, an assumed role's session name, "root", or the invoking service.
func lookupUsername(id *UserIdentity) string {
	switch id.Type {
	case "IAMUser":
		return id.UserName
	case "AssumedRole":
		if i := strings.LastIndexByte(id.ARN, '/'); i >= 0 {
			return id.ARN[i+1:]
		}
		return id.PrincipalID
	case "Root":
		return "root"
	case "AWSService":
		return id.InvokedBy
	}
	if id.UserName != "" {
		return id.UserName
	}
	return ""
}

// eventTime formats t as eventTime; the string of the current second is
// made once (every request of that second needs it).
func eventTime(t time.Time) string {
	sec := t.Unix()
	if c := lastEventTime.Load(); c != nil && c.sec == sec {
		return c.s
	}
	c := &cachedTime{sec: sec, s: t.UTC().Format(timeFormat)}
	lastEventTime.Store(c)
	return c.s
}

type cachedTime struct {
	sec int64
	s   string
}

var lastEventTime atomic.Pointer[cachedTime]

// newEventID returns a fresh eventID: a UUID, as CloudTrail's, of version
// 7 (RFC 9562), whose leading timestamp orders the IDs by time. As
// uuid.NewV7's, its 12 bits after the millisecond are the time's next
// digits, made to increase from one ID to the next; unlike it, it takes
// no lock, and its 62 random bits come from the runtime's generator, not
// from the system's: eventIDs are unique, not secret.
func newEventID() string {
	stamp := v7Stamp(time.Now().UnixNano())
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[:8], uint64(stamp>>12)<<16|0x7000|uint64(stamp&0xfff))
	binary.BigEndian.PutUint64(id[8:], rand.Uint64()>>2|1<<63) // variant 10
	return id.String()
}

// lastStamp is the last eventID's time: Unix milliseconds << 12, then
// 1/4096 of a millisecond.
var lastStamp atomic.Int64

// v7Stamp returns the time of an eventID made at nano (Unix
// nanoseconds), after the last one's.
func v7Stamp(nano int64) int64 {
	milli := nano / 1e6
	stamp := milli<<12 | (nano-milli*1e6)>>8 // (nano-milli*1e6)>>8 < 4096
	for {
		last := lastStamp.Load()
		next := max(stamp, last+1)
		if lastStamp.CompareAndSwap(last, next) {
			return next
		}
	}
}
