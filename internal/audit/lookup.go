package audit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

// The X-Amz-Target prefixes of the CloudTrail API (AWS JSON 1.1, SigV4
// service "cloudtrail"). The botocore model (aws CLI, boto3) sends the
// long one; the Smithy model (aws-sdk-go-v2, the other v2 SDKs) the short
// one. AWS answers both.
const (
	CloudTrailTargetPrefix      = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
	CloudTrailShortTargetPrefix = "CloudTrail_20131101."
)

// CloudTrailOperation returns the operation an X-Amz-Target names, if it
// is a CloudTrail target.
func CloudTrailOperation(target string) (string, bool) {
	if op, ok := strings.CutPrefix(target, CloudTrailTargetPrefix); ok {
		return op, true
	}
	return strings.CutPrefix(target, CloudTrailShortTargetPrefix)
}

// LookupInput is a LookupEvents request (the API's members, with the one
// lookup attribute unpacked).
type LookupInput struct {
	// AttributeKey is one of the Attr* keys, or "" for no filter.
	AttributeKey   string
	AttributeValue string
	// StartTime and EndTime bound eventTime, inclusive; zero is open.
	StartTime, EndTime time.Time
	// MaxResults is 1-50; 0 means 50.
	MaxResults int
	NextToken  string
}

// LookupOutput is a page of events, newest first.
type LookupOutput struct {
	Events    []LookupEvent `json:"Events"`
	NextToken string        `json:"NextToken,omitempty"`
}

// LookupEvent is the API's Event shape.
type LookupEvent struct {
	EventId         string           `json:"EventId"`
	EventName       string           `json:"EventName"`
	ReadOnly        string           `json:"ReadOnly"`
	AccessKeyId     string           `json:"AccessKeyId,omitempty"`
	EventTime       epochSeconds     `json:"EventTime"`
	EventSource     string           `json:"EventSource"`
	Username        string           `json:"Username,omitempty"`
	Resources       []LookupResource `json:"Resources"`
	CloudTrailEvent string           `json:"CloudTrailEvent"`
}

// LookupResource is the API's Resource shape.
type LookupResource struct {
	ResourceType string `json:"ResourceType,omitempty"`
	ResourceName string `json:"ResourceName,omitempty"`
}

// epochSeconds is a timestamp as AWS JSON 1.1 writes it.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatInt(time.Time(t).Unix(), 10)), nil
}

// LookupError is a LookupEvents client error, named as the API names it
// (InvalidLookupAttributesException, InvalidTimeRangeException, ...).
type LookupError struct {
	Code    string
	Message string
}

func (e *LookupError) Error() string { return e.Code + ": " + e.Message }

const lookupMaxDefault = 50

// Lookup answers a LookupEvents request from the index. Records that are
// durable when it is called are found (the index takes them in as their
// group commit completes).
func (s *Store) Lookup(ctx context.Context, in LookupInput) (LookupOutput, error) {
	q := indexQuery{key: in.AttributeKey, value: in.AttributeValue, start: math.MinInt64, end: math.MaxInt64}
	if in.AttributeKey != "" && in.AttributeKey != AttrEventID && attrCodes[in.AttributeKey] == 0 {
		return LookupOutput{}, &LookupError{"InvalidLookupAttributesException", fmt.Sprintf("%q is not a lookup attribute key", in.AttributeKey)}
	}
	if in.AttributeKey != "" && (in.AttributeValue == "" || len(in.AttributeValue) > 2000) {
		return LookupOutput{}, &LookupError{"InvalidLookupAttributesException", "AttributeValue must be 1 to 2000 characters"}
	}
	if !in.StartTime.IsZero() {
		q.start = in.StartTime.Unix()
	}
	if !in.EndTime.IsZero() {
		q.end = in.EndTime.Unix()
	}
	if !in.StartTime.IsZero() && !in.EndTime.IsZero() && in.StartTime.After(in.EndTime) {
		return LookupOutput{}, &LookupError{"InvalidTimeRangeException", "Start time must be before end time"}
	}
	switch {
	case in.MaxResults == 0:
		q.limit = lookupMaxDefault
	case in.MaxResults < 1 || in.MaxResults > 50:
		return LookupOutput{}, &LookupError{"InvalidMaxResultsException", "MaxResults must be between 1 and 50"}
	default:
		q.limit = in.MaxResults
	}
	fp := lookupFingerprint(in)
	if in.NextToken != "" {
		c, ok := decodeToken(in.NextToken)
		if !ok || c.F != fp {
			return LookupOutput{}, &LookupError{"InvalidNextTokenException", "Invalid NextToken: it was not issued for these parameters"}
		}
		q.beforeT, q.beforeE, q.hasCursor = c.T, c.E, true
	}
	if err := ctx.Err(); err != nil {
		return LookupOutput{}, err
	}
	want := q.limit
	q.limit++
	rows, err := s.idx.query(q)
	if err != nil {
		return LookupOutput{}, fmt.Errorf("audit: lookup: %w", err)
	}
	out := LookupOutput{Events: make([]LookupEvent, 0, min(len(rows), want))}
	for i, r := range rows {
		if i == want {
			last := rows[want-1]
			out.NextToken = encodeToken(cursor{T: last.t, E: last.eid, F: fp})
			break
		}
		ev, err := lookupEventOf(r.record)
		if err != nil {
			return LookupOutput{}, fmt.Errorf("audit: lookup: stored record %s: %w", r.eid, err)
		}
		out.Events = append(out.Events, ev)
	}
	return out, nil
}

func lookupEventOf(record []byte) (LookupEvent, error) {
	var ev Event
	if err := json.Unmarshal(record, &ev); err != nil {
		return LookupEvent{}, err
	}
	t, _ := parseTime(ev.EventTime)
	le := LookupEvent{
		EventId: ev.EventID, EventName: ev.EventName, ReadOnly: strconv.FormatBool(ev.ReadOnly),
		AccessKeyId: ev.UserIdentity.AccessKeyID, EventTime: epochSeconds(t), EventSource: ev.EventSource,
		Username: lookupUsername(&ev.UserIdentity), Resources: []LookupResource{}, CloudTrailEvent: string(record),
	}
	for _, r := range ev.Resources {
		typ, name := ResourceTypeAndName(r.ARN)
		if r.Type != "" {
			typ = r.Type
		}
		le.Resources = append(le.Resources, LookupResource{ResourceType: typ, ResourceName: name})
	}
	return le, nil
}

// cursor is the position a NextToken carries: the last event returned
// (time, eventID: the index's order), bound to the request's parameters
// by F.
type cursor struct {
	T int64  `json:"t"`
	E string `json:"e"`
	F string `json:"f"`
}

func encodeToken(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string) (cursor, bool) {
	var c cursor
	if len(s) > 512 {
		return c, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false
	}
	return c, true
}

func lookupFingerprint(in LookupInput) string {
	var st, et int64
	if !in.StartTime.IsZero() {
		st = in.StartTime.Unix()
	}
	if !in.EndTime.IsZero() {
		et = in.EndTime.Unix()
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d", in.AttributeKey, in.AttributeValue, st, et))
	return hex.EncodeToString(sum[:8])
}

// LookupConfig configures the CloudTrail API handler.
type LookupConfig struct {
	Store *Store
	// Authz decides cloudtrail:LookupEvents on "*". Required.
	Authz auth.Authorizer
	Log   *slog.Logger
}

type lookupHandler struct{ cfg LookupConfig }

// NewLookupHandler returns the handler of the CloudTrail API (AWS JSON
// 1.1, X-Amz-Target CloudTrailTargetPrefix or CloudTrailShortTargetPrefix
// + operation) for requests the
// door has already authenticated (auth.Info in the context, with the
// principal). It serves LookupEvents, authorized as
// cloudtrail:LookupEvents on "*"; every other CloudTrail operation
// answers UnsupportedOperationException.
func NewLookupHandler(cfg LookupConfig) (http.Handler, error) {
	if cfg.Store == nil || cfg.Authz == nil {
		return nil, errors.New("audit: the LookupEvents handler needs a Store and an Authorizer")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &lookupHandler{cfg: cfg}, nil
}

// lookupRequest is LookupEventsRequest on the wire.
type lookupRequest struct {
	LookupAttributes []struct {
		AttributeKey   *string `json:"AttributeKey"`
		AttributeValue *string `json:"AttributeValue"`
	} `json:"LookupAttributes"`
	StartTime     *awsTime `json:"StartTime"`
	EndTime       *awsTime `json:"EndTime"`
	EventCategory *string  `json:"EventCategory"`
	MaxResults    *int     `json:"MaxResults"`
	NextToken     *string  `json:"NextToken"`
}

// awsTime reads an AWS JSON timestamp: epoch seconds (a number, maybe
// fractional) or, leniently, an ISO 8601 string.
type awsTime time.Time

func (t *awsTime) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		*t = awsTime(time.Unix(int64(sec), int64(frac*1e9)).UTC())
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02"} {
		if v, err := time.Parse(layout, s); err == nil {
			*t = awsTime(v)
			return nil
		}
	}
	return fmt.Errorf("timestamp %.40q is neither epoch seconds nor ISO 8601", s)
}

func (h *lookupHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := auth.FromContext(r.Context())
	if info == nil {
		info = &auth.Info{Principal: auth.Anonymous}
	}
	op, _ := CloudTrailOperation(r.Header.Get("X-Amz-Target"))
	info.EventName = op
	info.Action = "cloudtrail:" + op
	resp, err := h.serve(r, info, op)
	if err != nil {
		h.writeError(w, r, info, err)
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		h.writeError(w, r, info, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", info.RequestID)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (h *lookupHandler) serve(r *http.Request, info *auth.Info, op string) (any, error) {
	if op != "LookupEvents" {
		if slices.Contains(cloudTrailOperations, op) {
			return nil, &LookupError{"UnsupportedOperationException", "Coffer implements only LookupEvents of the CloudTrail API, not " + op}
		}
		return nil, &LookupError{"UnknownOperationException", "Unknown CloudTrail operation " + strconv.QuoteToASCII(truncate(op, 100))}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil || len(body) > 1<<20 {
		return nil, &LookupError{"SerializationException", "could not read the request body"}
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	var req lookupRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, &LookupError{"SerializationException", "could not parse the request: " + err.Error()}
	}
	in, params, err := req.input()
	info.Params = params
	if err := h.cfg.Authz.Authorize(r.Context(), info, "cloudtrail:LookupEvents", "*"); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if req.EventCategory != nil {
		if *req.EventCategory != "insight" {
			return nil, &LookupError{"InvalidEventCategoryException", "EventCategory must be insight"}
		}
		// Coffer has no Insights events.
		return LookupOutput{Events: []LookupEvent{}}, nil
	}
	return h.cfg.Store.Lookup(r.Context(), in)
}

// input validates the wire request and returns it, and its audit
// parameters.
func (req *lookupRequest) input() (LookupInput, map[string]any, error) {
	var in LookupInput
	params := map[string]any{}
	if len(req.LookupAttributes) > 0 {
		var list []any
		for _, a := range req.LookupAttributes {
			m := map[string]any{}
			if a.AttributeKey != nil {
				m["attributeKey"] = *a.AttributeKey
			}
			if a.AttributeValue != nil {
				m["attributeValue"] = truncate(*a.AttributeValue, 2000)
			}
			list = append(list, m)
		}
		params["lookupAttributes"] = list
	}
	if req.StartTime != nil {
		in.StartTime = time.Time(*req.StartTime)
		params["startTime"] = in.StartTime.UTC().Format(time.RFC3339)
	}
	if req.EndTime != nil {
		in.EndTime = time.Time(*req.EndTime)
		params["endTime"] = in.EndTime.UTC().Format(time.RFC3339)
	}
	if req.MaxResults != nil {
		params["maxResults"] = *req.MaxResults
	}
	if req.EventCategory != nil {
		params["eventCategory"] = *req.EventCategory
	}
	switch len(req.LookupAttributes) {
	case 0:
	case 1:
		a := req.LookupAttributes[0]
		if a.AttributeKey == nil || a.AttributeValue == nil {
			return in, params, &LookupError{"InvalidLookupAttributesException", "A lookup attribute needs an AttributeKey and an AttributeValue"}
		}
		in.AttributeKey, in.AttributeValue = *a.AttributeKey, *a.AttributeValue
	default:
		return in, params, &LookupError{"InvalidLookupAttributesException", "You cannot specify more than one lookup attribute"}
	}
	if req.MaxResults != nil {
		in.MaxResults = *req.MaxResults
		if in.MaxResults == 0 {
			return in, params, &LookupError{"InvalidMaxResultsException", "MaxResults must be between 1 and 50"}
		}
	}
	if req.NextToken != nil {
		in.NextToken = *req.NextToken
	}
	return in, params, nil
}

func (h *lookupHandler) writeError(w http.ResponseWriter, r *http.Request, info *auth.Info, err error) {
	status, code, msg := http.StatusBadRequest, "", ""
	var le *LookupError
	var de *auth.DeniedError
	switch {
	case errors.As(err, &le):
		code, msg = le.Code, le.Message
	case errors.As(err, &de):
		code, msg = "AccessDeniedException", de.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status, code, msg = http.StatusServiceUnavailable, "ServiceUnavailableException", "the request was cancelled"
	default:
		h.cfg.Log.ErrorContext(r.Context(), "audit: LookupEvents failed", "request_id", info.RequestID, "error", err)
		status, code, msg = http.StatusInternalServerError, "InternalFailure", "internal server error"
	}
	info.ErrorCode, info.ErrorMessage = code, msg
	body, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", info.RequestID)
	w.Header().Set("x-amzn-ErrorType", code)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// cloudTrailOperations are the operations of the botocore model
// cloudtrail/2013-11-01.
var cloudTrailOperations = []string{
	"AddTags", "CancelQuery", "CreateChannel", "CreateDashboard", "CreateEventDataStore", "CreateTrail",
	"DeleteChannel", "DeleteDashboard", "DeleteEventDataStore", "DeleteResourcePolicy", "DeleteTrail",
	"DeregisterOrganizationDelegatedAdmin", "DescribeQuery", "DescribeTrails", "DisableFederation",
	"EnableFederation", "GenerateQuery", "GetChannel", "GetDashboard", "GetEventConfiguration",
	"GetEventDataStore", "GetEventSelectors", "GetImport", "GetInsightSelectors", "GetQueryResults",
	"GetResourcePolicy", "GetTrail", "GetTrailStatus", "ListChannels", "ListDashboards", "ListEventDataStores",
	"ListImportFailures", "ListImports", "ListInsightsData", "ListInsightsMetricData", "ListPublicKeys",
	"ListQueries", "ListTags", "ListTrails", "LookupEvents", "PutEventConfiguration", "PutEventSelectors",
	"PutInsightSelectors", "PutResourcePolicy", "RegisterOrganizationDelegatedAdmin", "RemoveTags",
	"RestoreEventDataStore", "SearchSampleQueries", "StartDashboardRefresh", "StartEventDataStoreIngestion",
	"StartImport", "StartLogging", "StartQuery", "StopEventDataStoreIngestion", "StopImport", "StopLogging",
	"UpdateChannel", "UpdateDashboard", "UpdateEventDataStore", "UpdateTrail",
}
