package iamapi

import (
	"bytes"
	"encoding/xml"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/iam"
)

// The XML shapes below mirror the botocore output shapes member for
// member; model_test.go holds every response against the model.

// members is a Query-protocol list: <Name><member>...</member></Name>. The
// wrapper is always written, so required lists appear even when empty.
type members[T any] struct {
	Items []T `xml:"member"`
}

// isoTime is a timestamp as AWS's Query APIs write it: ISO 8601 UTC to the
// second (2024-01-02T03:04:05Z).
type isoTime time.Time

func (t isoTime) MarshalText() ([]byte, error) {
	return []byte(time.Time(t).UTC().Format("2006-01-02T15:04:05Z")), nil
}

// optTime is nil for a zero time (the AWS managed policies have no dates).
func optTime(t time.Time) *isoTime {
	if t.IsZero() {
		return nil
	}
	v := isoTime(t)
	return &v
}

// urlEncode encodes a policy document the way IAM returns it (RFC 3986
// percent-encoding; botocore and url.QueryUnescape both decode it).
func urlEncode(doc string) string {
	return strings.ReplaceAll(url.QueryEscape(doc), "+", "%20")
}

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

func tagList(tags map[string]string) *members[xmlTag] {
	if len(tags) == 0 {
		return nil
	}
	l := &members[xmlTag]{}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		l.Items = append(l.Items, xmlTag{Key: k, Value: tags[k]})
	}
	return l
}

type xmlUser struct {
	Path       string           `xml:"Path"`
	UserName   string           `xml:"UserName"`
	UserID     string           `xml:"UserId"`
	Arn        string           `xml:"Arn"`
	CreateDate isoTime          `xml:"CreateDate"`
	Tags       *members[xmlTag] `xml:"Tags,omitempty"`
}

func toUser(u iam.User, withTags bool) xmlUser {
	x := xmlUser{Path: u.Path, UserName: u.Name, UserID: u.ID, Arn: u.ARN, CreateDate: isoTime(u.CreatedAt)}
	if withTags {
		x.Tags = tagList(u.Tags)
	}
	return x
}

type xmlGroup struct {
	Path       string  `xml:"Path"`
	GroupName  string  `xml:"GroupName"`
	GroupID    string  `xml:"GroupId"`
	Arn        string  `xml:"Arn"`
	CreateDate isoTime `xml:"CreateDate"`
}

func toGroup(g iam.Group) xmlGroup {
	return xmlGroup{Path: g.Path, GroupName: g.Name, GroupID: g.ID, Arn: g.ARN, CreateDate: isoTime(g.CreatedAt)}
}

type xmlRole struct {
	Path                     string           `xml:"Path"`
	RoleName                 string           `xml:"RoleName"`
	RoleID                   string           `xml:"RoleId"`
	Arn                      string           `xml:"Arn"`
	CreateDate               isoTime          `xml:"CreateDate"`
	AssumeRolePolicyDocument string           `xml:"AssumeRolePolicyDocument"`
	Description              string           `xml:"Description,omitempty"`
	MaxSessionDuration       int              `xml:"MaxSessionDuration"`
	Tags                     *members[xmlTag] `xml:"Tags,omitempty"`
}

func toRole(r iam.Role) xmlRole {
	return xmlRole{Path: r.Path, RoleName: r.Name, RoleID: r.ID, Arn: r.ARN, CreateDate: isoTime(r.CreatedAt),
		AssumeRolePolicyDocument: urlEncode(r.AssumeRolePolicy), Description: r.Description,
		MaxSessionDuration: r.MaxSessionDuration, Tags: tagList(r.Tags)}
}

type xmlPolicy struct {
	PolicyName                    string   `xml:"PolicyName"`
	PolicyID                      string   `xml:"PolicyId"`
	Arn                           string   `xml:"Arn"`
	Path                          string   `xml:"Path"`
	DefaultVersionID              string   `xml:"DefaultVersionId"`
	AttachmentCount               int      `xml:"AttachmentCount"`
	PermissionsBoundaryUsageCount int      `xml:"PermissionsBoundaryUsageCount"`
	IsAttachable                  bool     `xml:"IsAttachable"`
	Description                   string   `xml:"Description,omitempty"`
	CreateDate                    *isoTime `xml:"CreateDate,omitempty"`
	UpdateDate                    *isoTime `xml:"UpdateDate,omitempty"`
}

func toPolicy(p iam.ManagedPolicy, withDescription bool) xmlPolicy {
	x := xmlPolicy{PolicyName: p.Name, PolicyID: p.ID, Arn: p.ARN, Path: p.Path, DefaultVersionID: "v1",
		AttachmentCount: p.AttachmentCount, IsAttachable: true,
		CreateDate: optTime(p.CreatedAt), UpdateDate: optTime(p.UpdatedAt)}
	if withDescription {
		x.Description = p.Description
	}
	return x
}

type xmlAttachedPolicy struct {
	PolicyName string `xml:"PolicyName"`
	PolicyArn  string `xml:"PolicyArn"`
}

type xmlAccessKey struct {
	UserName        string  `xml:"UserName"`
	AccessKeyID     string  `xml:"AccessKeyId"`
	Status          string  `xml:"Status"`
	SecretAccessKey string  `xml:"SecretAccessKey,omitempty"`
	CreateDate      isoTime `xml:"CreateDate"`
}

type xmlCredentials struct {
	AccessKeyID     string  `xml:"AccessKeyId"`
	SecretAccessKey string  `xml:"SecretAccessKey"`
	SessionToken    string  `xml:"SessionToken"`
	Expiration      isoTime `xml:"Expiration"`
}

func toCredentials(c iam.Credentials) xmlCredentials {
	return xmlCredentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey,
		SessionToken: c.SessionToken, Expiration: isoTime(c.Expiration)}
}

// encodeResponse writes
//
//	<ActionResponse xmlns="ns"><ActionResult>result</ActionResult>
//	<ResponseMetadata><RequestId>id</RequestId></ResponseMetadata></ActionResponse>
//
// leaving out ActionResult for operations without output.
func encodeResponse(ns, action, requestID string, result any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	root := xml.StartElement{Name: xml.Name{Local: action + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: ns}}}
	if err := enc.EncodeToken(root); err != nil {
		return nil, err
	}
	if result != nil {
		if err := enc.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: action + "Result"}}); err != nil {
			return nil, err
		}
	}
	meta := struct {
		RequestID string `xml:"RequestId"`
	}{requestID}
	if err := enc.EncodeElement(meta, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}}); err != nil {
		return nil, err
	}
	if err := enc.EncodeToken(root.End()); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type xmlErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Error     xmlError `xml:"Error"`
	RequestID string   `xml:"RequestId"`
}

type xmlError struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func encodeError(ns, requestID string, e *apiError) []byte {
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	out, err := xml.Marshal(xmlErrorResponse{Xmlns: ns, Error: xmlError{Type: typ, Code: e.code, Message: e.msg}, RequestID: requestID})
	if err != nil {
		// Only strings are marshalled; this cannot fail.
		panic("iamapi: marshal error response: " + err.Error())
	}
	return append([]byte(xml.Header), out...)
}
