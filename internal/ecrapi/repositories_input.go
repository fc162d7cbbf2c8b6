package ecrapi

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/registry"
)

// This file decodes and validates the requests of the repository, policy,
// tag and registry operations without any I/O (FuzzDecodeRepositoryRequests
// drives it). Limits are the botocore model's (ecr/2015-09-21) and, for tags,
// AWS's tagging rules the model's documentation states.

const (
	maxRepositoryNames  = 100   // RepositoryNameList
	maxDescribeResults  = 1000  // MaxResults
	defaultDescribeSize = 100   // DescribeRepositories without maxResults
	maxExclusionFilters = 5     // ImageTagMutabilityExclusionFilters
	maxPolicyChars      = 10240 // RepositoryPolicyText, RegistryPolicyText
	maxKMSKeyChars      = 2048  // KmsKey
	maxTagsPerResource  = 50
	maxTagKeyChars      = 128
	maxTagValueChars    = 256
	pageTokenPrefix     = "r1:" // version of the DescribeRepositories nextToken
)

var (
	repoRegistryIDRE  = regexp.MustCompile(`^[0-9]{12}$`)
	exclusionFilterRE = regexp.MustCompile(`^[0-9a-zA-Z._*-]{1,128}$`)
)

// registryScope is the one registry Coffer serves, as requests name it.
type registryScope struct {
	region, account string
}

func (h *Handler) registryScope() registryScope {
	return registryScope{region: h.cfg.Registry.Region(), account: h.cfg.Registry.AccountID()}
}

// repoErr returns an ECR client error (HTTP 400) of the given exception.
func repoErr(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func invalidParameter(format string, args ...any) *Error {
	return repoErr("InvalidParameterException", format, args...)
}

// repositoryNotFound is ECR's RepositoryNotFoundException wording.
func (s registryScope) repositoryNotFound(name registry.RepoName) *Error {
	return repoErr("RepositoryNotFoundException",
		"The repository with name '%s' does not exist in the registry with id '%s'", name, s.account)
}

// checkRegistryID accepts an absent registryId or this registry's account.
func (s registryScope) checkRegistryID(id *string) error {
	if id == nil {
		return nil
	}
	if !repoRegistryIDRE.MatchString(*id) {
		return invalidParameter("Invalid parameter at 'registryId' failed to satisfy constraint: 'must satisfy regular expression '[0-9]{12}''")
	}
	if *id != s.account {
		return invalidParameter("Invalid parameter at 'registryId': %s is not the account of this registry (%s); Coffer serves one registry", *id, s.account)
	}
	return nil
}

// repositoryName validates a repositoryName member.
func repositoryName(s string) (registry.RepoName, error) {
	name, err := registry.ParseRepoName(s)
	if err != nil {
		return "", invalidParameter("Invalid parameter at 'repositoryName' failed to satisfy constraint: %v", strings.TrimPrefix(err.Error(), registry.ErrNameInvalid.Error()+": "))
	}
	return name, nil
}

// repositoryRef is the registryId + repositoryName pair most operations
// start with.
type repositoryRef struct {
	RegistryID     *string `json:"registryId"`
	RepositoryName string  `json:"repositoryName"`
}

func (s registryScope) ref(in repositoryRef) (registry.RepoName, error) {
	if err := s.checkRegistryID(in.RegistryID); err != nil {
		return "", err
	}
	return repositoryName(in.RepositoryName)
}

// Wire shapes shared by requests and responses.
type (
	exclusionFilterShape struct {
		FilterType string `json:"filterType"`
		Filter     string `json:"filter"`
	}
	scanningShape struct {
		ScanOnPush bool `json:"scanOnPush"`
	}
	encryptionShape struct {
		EncryptionType string  `json:"encryptionType"`
		KMSKey         *string `json:"kmsKey,omitempty"`
	}
	tagShape struct {
		Key   string `json:"Key"`
		Value string `json:"Value"`
	}
	// tagInput tells a missing Key or Value (both required) from "".
	tagInput struct {
		Key   *string `json:"Key"`
		Value *string `json:"Value"`
	}
)

// tagMutability validates imageTagMutability with its exclusion filters:
// filters are required for the *_WITH_EXCLUSION settings and forbidden
// otherwise. An empty setting is MUTABLE unless required.
func tagMutability(setting string, filters []exclusionFilterShape, required bool) (string, []string, error) {
	switch setting {
	case "":
		if required {
			return "", nil, invalidParameter("Invalid parameter at 'imageTagMutability': a value is required (MUTABLE, IMMUTABLE, MUTABLE_WITH_EXCLUSION or IMMUTABLE_WITH_EXCLUSION)")
		}
		setting = metadata.TagMutable
	case metadata.TagMutable, metadata.TagImmutable, metadata.TagMutableWithExclusion, metadata.TagImmutableWithExclusion:
	default:
		return "", nil, invalidParameter("Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]'")
	}
	withExclusion := setting == metadata.TagMutableWithExclusion || setting == metadata.TagImmutableWithExclusion
	switch {
	case !withExclusion && filters != nil:
		return "", nil, invalidParameter("Invalid parameter at 'imageTagMutabilityExclusionFilters': exclusion filters apply only to MUTABLE_WITH_EXCLUSION and IMMUTABLE_WITH_EXCLUSION, not %s", setting)
	case withExclusion && len(filters) == 0:
		return "", nil, invalidParameter("Invalid parameter at 'imageTagMutabilityExclusionFilters': %s needs 1 to %d exclusion filters", setting, maxExclusionFilters)
	case len(filters) > maxExclusionFilters:
		return "", nil, invalidParameter("Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy constraint: 'Member must have length less than or equal to %d'", maxExclusionFilters)
	}
	var out []string
	for i, f := range filters {
		if f.FilterType != "WILDCARD" {
			return "", nil, invalidParameter("Invalid parameter at 'imageTagMutabilityExclusionFilters.%d.filterType' failed to satisfy constraint: 'Member must satisfy enum value set: [WILDCARD]'", i+1)
		}
		if !exclusionFilterRE.MatchString(f.Filter) {
			return "", nil, invalidParameter("Invalid parameter at 'imageTagMutabilityExclusionFilters.%d.filter' failed to satisfy constraint: 'Member must satisfy regular expression pattern: ^[0-9a-zA-Z._*-]{1,128}$'", i+1)
		}
		out = append(out, f.Filter)
	}
	return setting, out, nil
}

// validTagText reports whether s uses only the characters AWS allows in
// tags: Unicode letters, digits and spaces, and _ . : / = + - @.
func validTagText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.Is(unicode.Zs, r) || strings.ContainsRune("_.:/=+-@", r) {
			continue
		}
		return false
	}
	return true
}

// tagKey validates one tag key.
func tagKey(k string) error {
	n := utf8.RuneCountInString(k)
	switch {
	case n < 1 || n > maxTagKeyChars:
		return repoErr("InvalidTagParameterException", "Tag keys must be 1 to %d characters long", maxTagKeyChars)
	case !validTagText(k):
		return repoErr("InvalidTagParameterException", "Tag key %q may contain only Unicode letters, digits, white space and _ . : / = + - @", k)
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return repoErr("InvalidTagParameterException", "Tag keys beginning with 'aws:' are reserved for AWS use")
	}
	return nil
}

// tagList validates the tags of a request: each Key and Value present and
// valid, no key twice, at most 50.
func tagList(in []tagInput) ([]tagShape, error) {
	if len(in) > maxTagsPerResource {
		return nil, repoErr("TooManyTagsException", "A resource can have at most %d tags; the request has %d", maxTagsPerResource, len(in))
	}
	out := make([]tagShape, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, t := range in {
		if t.Key == nil || t.Value == nil {
			return nil, repoErr("InvalidTagParameterException", "Every tag needs a Key and a Value (the Value may be empty)")
		}
		if err := tagKey(*t.Key); err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(*t.Value) > maxTagValueChars || !validTagText(*t.Value) {
			return nil, repoErr("InvalidTagParameterException", "The value of tag %q must be at most %d characters of Unicode letters, digits, white space and _ . : / = + - @", *t.Key, maxTagValueChars)
		}
		if seen[*t.Key] {
			return nil, repoErr("InvalidTagParameterException", "Tag key %q appears more than once", *t.Key)
		}
		seen[*t.Key] = true
		out = append(out, tagShape{Key: *t.Key, Value: *t.Value})
	}
	return out, nil
}

// createRepositoryRequest is a validated CreateRepository.
type createRepositoryRequest struct {
	name       registry.RepoName
	mutability string
	exclusions []string
	scanOnPush bool
	tags       []tagShape
	encryption string // AES256, KMS or KMS_DSSE
	kmsKey     string // as given; "" for the default key (alias/aws/ecr)
}

func (s registryScope) parseCreateRepository(body []byte) (createRepositoryRequest, error) {
	var in struct {
		repositoryRef
		Tags                               []tagInput             `json:"tags"`
		ImageTagMutability                 string                 `json:"imageTagMutability"`
		ImageTagMutabilityExclusionFilters []exclusionFilterShape `json:"imageTagMutabilityExclusionFilters"`
		ImageScanningConfiguration         *scanningShape         `json:"imageScanningConfiguration"`
		EncryptionConfiguration            *encryptionShape       `json:"encryptionConfiguration"`
	}
	if err := decode(body, &in); err != nil {
		return createRepositoryRequest{}, err
	}
	var (
		req createRepositoryRequest
		err error
	)
	if req.name, err = s.ref(in.repositoryRef); err != nil {
		return createRepositoryRequest{}, err
	}
	if req.encryption, req.kmsKey, err = s.encryptionType(in.EncryptionConfiguration); err != nil {
		return createRepositoryRequest{}, err
	}
	if req.mutability, req.exclusions, err = tagMutability(in.ImageTagMutability, in.ImageTagMutabilityExclusionFilters, false); err != nil {
		return createRepositoryRequest{}, err
	}
	if in.ImageScanningConfiguration != nil {
		req.scanOnPush = in.ImageScanningConfiguration.ScanOnPush
	}
	if req.tags, err = tagList(in.Tags); err != nil {
		return createRepositoryRequest{}, err
	}
	return req, nil
}

// encryptionType validates the encryption configuration and returns the
// type (AES256 when none is given, SPEC ENC-03) and the kmsKey as given
// ("" for none). KMS_DSSE exists only in the AWS GovCloud (US) regions
// (ENC-06); elsewhere it is refused, never downgraded: the repository's
// encryption can never change later (ENC-07).
func (s registryScope) encryptionType(c *encryptionShape) (string, string, error) {
	if c == nil {
		return metadata.EncryptionAES256, "", nil
	}
	if c.KMSKey != nil && (utf8.RuneCountInString(*c.KMSKey) < 1 || utf8.RuneCountInString(*c.KMSKey) > maxKMSKeyChars) {
		return "", "", invalidParameter("Invalid parameter at 'encryptionConfiguration.kmsKey' failed to satisfy constraint: 'Member must have length between 1 and %d'", maxKMSKeyChars)
	}
	switch c.EncryptionType {
	case metadata.EncryptionAES256:
		if c.KMSKey != nil {
			return "", "", invalidParameter("Invalid parameter at 'encryptionConfiguration': kmsKey can only be specified with the encryption type KMS or KMS_DSSE, not AES256")
		}
		return metadata.EncryptionAES256, "", nil
	case metadata.EncryptionKMS, metadata.EncryptionKMSDSSE:
		if c.EncryptionType == metadata.EncryptionKMSDSSE && !govCloud(s.region) {
			return "", "", invalidParameter("Invalid parameter at 'encryptionConfiguration.encryptionType': KMS_DSSE (dual-layer server-side encryption) is only available in the AWS GovCloud (US) regions (us-gov-east-1, us-gov-west-1), not in %s", s.region)
		}
		key := ""
		if c.KMSKey != nil {
			key = *c.KMSKey
		}
		return c.EncryptionType, key, nil
	case "":
		return "", "", invalidParameter("Invalid parameter at 'encryptionConfiguration.encryptionType': a value is required (AES256, KMS or KMS_DSSE)")
	default:
		return "", "", invalidParameter("Invalid parameter at 'encryptionConfiguration.encryptionType' failed to satisfy constraint: 'Member must satisfy enum value set: [AES256, KMS, KMS_DSSE]'")
	}
}

// govCloud reports whether region is in the aws-us-gov partition.
func govCloud(region string) bool { return strings.HasPrefix(region, "us-gov-") }

// describeRepositoriesRequest is a validated DescribeRepositories: either
// names, or a page (after, limit).
type describeRepositoriesRequest struct {
	names []registry.RepoName // distinct, in request order; nil for a page
	after string              // name the page starts after
	limit int
}

func (s registryScope) parseDescribeRepositories(body []byte) (describeRepositoriesRequest, error) {
	var in struct {
		RegistryID      *string  `json:"registryId"`
		RepositoryNames []string `json:"repositoryNames"`
		NextToken       *string  `json:"nextToken"`
		MaxResults      *int     `json:"maxResults"`
	}
	if err := decode(body, &in); err != nil {
		return describeRepositoriesRequest{}, err
	}
	if err := s.checkRegistryID(in.RegistryID); err != nil {
		return describeRepositoriesRequest{}, err
	}
	req := describeRepositoriesRequest{limit: defaultDescribeSize}
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > maxDescribeResults {
			return describeRepositoriesRequest{}, invalidParameter("Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and %d'", maxDescribeResults)
		}
		req.limit = *in.MaxResults
	}
	if in.RepositoryNames != nil {
		if in.NextToken != nil || in.MaxResults != nil {
			return describeRepositoriesRequest{}, invalidParameter("Invalid parameter: nextToken and maxResults cannot be used with repositoryNames")
		}
		if len(in.RepositoryNames) < 1 || len(in.RepositoryNames) > maxRepositoryNames {
			return describeRepositoriesRequest{}, invalidParameter("Invalid parameter at 'repositoryNames' failed to satisfy constraint: 'Member must have length between 1 and %d'", maxRepositoryNames)
		}
		seen := make(map[registry.RepoName]bool, len(in.RepositoryNames))
		req.names = make([]registry.RepoName, 0, len(in.RepositoryNames))
		for _, n := range in.RepositoryNames {
			name, err := repositoryName(n)
			if err != nil {
				return describeRepositoriesRequest{}, err
			}
			if !seen[name] {
				seen[name] = true
				req.names = append(req.names, name)
			}
		}
		return req, nil
	}
	if in.NextToken != nil && *in.NextToken != "" {
		after, err := parsePageToken(*in.NextToken)
		if err != nil {
			return describeRepositoriesRequest{}, err
		}
		req.after = after
	}
	return req, nil
}

// The DescribeRepositories nextToken is opaque to clients: the versioned
// name of the page's last repository, base64url. Keyset paging on the name
// is stable under concurrent creates and deletes.
func pageToken(last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + last))
}

func parsePageToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	name, ok := strings.CutPrefix(string(b), pageTokenPrefix)
	if err != nil || !ok {
		return "", invalidParameter("Invalid parameter at 'nextToken': the token is not one DescribeRepositories returned")
	}
	if _, err := registry.ParseRepoName(name); err != nil {
		return "", invalidParameter("Invalid parameter at 'nextToken': the token is not one DescribeRepositories returned")
	}
	return name, nil
}

// deleteRepositoryRequest is a validated DeleteRepository.
type deleteRepositoryRequest struct {
	name  registry.RepoName
	force bool
}

func (s registryScope) parseDeleteRepository(body []byte) (deleteRepositoryRequest, error) {
	var in struct {
		repositoryRef
		Force bool `json:"force"`
	}
	if err := decode(body, &in); err != nil {
		return deleteRepositoryRequest{}, err
	}
	name, err := s.ref(in.repositoryRef)
	if err != nil {
		return deleteRepositoryRequest{}, err
	}
	return deleteRepositoryRequest{name: name, force: in.Force}, nil
}

// parseRepositoryRef is the request of operations that name a repository
// and nothing else (GetRepositoryPolicy, DeleteRepositoryPolicy).
func (s registryScope) parseRepositoryRef(body []byte) (registry.RepoName, error) {
	var in repositoryRef
	if err := decode(body, &in); err != nil {
		return "", err
	}
	return s.ref(in)
}

// tagMutabilityRequest is a validated PutImageTagMutability.
type tagMutabilityRequest struct {
	name       registry.RepoName
	mutability string
	exclusions []string
}

func (s registryScope) parsePutImageTagMutability(body []byte) (tagMutabilityRequest, error) {
	var in struct {
		repositoryRef
		ImageTagMutability                 string                 `json:"imageTagMutability"`
		ImageTagMutabilityExclusionFilters []exclusionFilterShape `json:"imageTagMutabilityExclusionFilters"`
	}
	if err := decode(body, &in); err != nil {
		return tagMutabilityRequest{}, err
	}
	var (
		req tagMutabilityRequest
		err error
	)
	if req.name, err = s.ref(in.repositoryRef); err != nil {
		return tagMutabilityRequest{}, err
	}
	if req.mutability, req.exclusions, err = tagMutability(in.ImageTagMutability, in.ImageTagMutabilityExclusionFilters, true); err != nil {
		return tagMutabilityRequest{}, err
	}
	return req, nil
}

func (s registryScope) parsePutImageScanningConfiguration(body []byte) (registry.RepoName, bool, error) {
	var in struct {
		repositoryRef
		ImageScanningConfiguration *scanningShape `json:"imageScanningConfiguration"`
	}
	if err := decode(body, &in); err != nil {
		return "", false, err
	}
	name, err := s.ref(in.repositoryRef)
	if err != nil {
		return "", false, err
	}
	if in.ImageScanningConfiguration == nil {
		return "", false, invalidParameter("Invalid parameter at 'imageScanningConfiguration': a value is required")
	}
	return name, in.ImageScanningConfiguration.ScanOnPush, nil
}

// policyText checks the length limit of a repository or registry policy;
// the policy parser (policy.Parse) checks the rest.
func policyText(text *string) error {
	if text == nil {
		return invalidParameter("Invalid parameter at 'policyText': a value is required")
	}
	if utf8.RuneCountInString(*text) > maxPolicyChars {
		return invalidParameter("Invalid parameter at 'policyText' failed to satisfy constraint: 'Member must have length less than or equal to %d'", maxPolicyChars)
	}
	return nil
}

// setRepositoryPolicyRequest is a SetRepositoryPolicy whose text still has
// to parse as a policy.
type setRepositoryPolicyRequest struct {
	name  registry.RepoName
	text  string
	force bool
}

func (s registryScope) parseSetRepositoryPolicy(body []byte) (setRepositoryPolicyRequest, error) {
	var in struct {
		repositoryRef
		PolicyText *string `json:"policyText"`
		Force      bool    `json:"force"`
	}
	if err := decode(body, &in); err != nil {
		return setRepositoryPolicyRequest{}, err
	}
	name, err := s.ref(in.repositoryRef)
	if err != nil {
		return setRepositoryPolicyRequest{}, err
	}
	if err := policyText(in.PolicyText); err != nil {
		return setRepositoryPolicyRequest{}, err
	}
	return setRepositoryPolicyRequest{name: name, text: *in.PolicyText, force: in.Force}, nil
}

func parsePutRegistryPolicy(body []byte) (string, error) {
	var in struct {
		PolicyText *string `json:"policyText"`
	}
	if err := decode(body, &in); err != nil {
		return "", err
	}
	if err := policyText(in.PolicyText); err != nil {
		return "", err
	}
	return *in.PolicyText, nil
}

// parseNoMembers is the request of operations whose input has no members
// (GetRegistryPolicy, DeleteRegistryPolicy, DescribeRegistry).
func parseNoMembers(body []byte) error {
	var in struct{}
	return decode(body, &in)
}

// repositoryFromARN returns the repository a resourceArn names: an ECR
// repository ARN of this registry (SPEC STO-06).
func (s registryScope) repositoryFromARN(arn *string) (registry.RepoName, error) {
	if arn == nil {
		return "", invalidParameter("Invalid parameter at 'resourceArn': a value is required")
	}
	bad := func(why string) error {
		return invalidParameter("Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN': %s", why)
	}
	parts := strings.SplitN(*arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] != "aws" || parts[2] != "ecr" {
		return "", bad("want arn:aws:ecr:<region>:<account>:repository/<name>")
	}
	if parts[3] != s.region || parts[4] != s.account {
		return "", bad(fmt.Sprintf("the ARN is not in this registry (region %s, account %s)", s.region, s.account))
	}
	rest, ok := strings.CutPrefix(parts[5], "repository/")
	if !ok {
		return "", bad("only repositories can be tagged")
	}
	name, err := registry.ParseRepoName(rest)
	if err != nil {
		return "", bad("the repository name is not valid")
	}
	return name, nil
}

func (s registryScope) parseTagResource(body []byte) (registry.RepoName, []tagShape, error) {
	var in struct {
		ResourceARN *string    `json:"resourceArn"`
		Tags        []tagInput `json:"tags"`
	}
	if err := decode(body, &in); err != nil {
		return "", nil, err
	}
	name, err := s.repositoryFromARN(in.ResourceARN)
	if err != nil {
		return "", nil, err
	}
	if in.Tags == nil {
		return "", nil, invalidParameter("Invalid parameter at 'tags': a value is required")
	}
	tags, err := tagList(in.Tags)
	if err != nil {
		return "", nil, err
	}
	return name, tags, nil
}

func (s registryScope) parseUntagResource(body []byte) (registry.RepoName, []string, error) {
	var in struct {
		ResourceARN *string  `json:"resourceArn"`
		TagKeys     []string `json:"tagKeys"`
	}
	if err := decode(body, &in); err != nil {
		return "", nil, err
	}
	name, err := s.repositoryFromARN(in.ResourceARN)
	if err != nil {
		return "", nil, err
	}
	if in.TagKeys == nil {
		return "", nil, invalidParameter("Invalid parameter at 'tagKeys': a value is required")
	}
	if len(in.TagKeys) > maxTagsPerResource {
		return "", nil, repoErr("TooManyTagsException", "At most %d tag keys can be removed at once; the request has %d", maxTagsPerResource, len(in.TagKeys))
	}
	for _, k := range in.TagKeys {
		if err := tagKey(k); err != nil {
			return "", nil, err
		}
	}
	return name, in.TagKeys, nil
}

func (s registryScope) parseListTagsForResource(body []byte) (registry.RepoName, error) {
	var in struct {
		ResourceARN *string `json:"resourceArn"`
	}
	if err := decode(body, &in); err != nil {
		return "", err
	}
	return s.repositoryFromARN(in.ResourceARN)
}
