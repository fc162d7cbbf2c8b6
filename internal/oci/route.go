package oci

import (
	"net/http"
	"strings"
)

type routeKind int

const (
	routeBase routeKind = iota + 1
	routeCatalog
	routeTags
	routeManifest
	routeBlob
	routeUploadStart
	routeUpload
	routeReferrers
)

// route is a parsed /v2/ path. Repository names contain '/', so the path is
// matched from its end: the last one to three segments say what it is, the
// rest is the name.
type route struct {
	kind routeKind
	name string
	ref  string // tag or digest, blob digest, or upload ID
}

func parseRoute(path string) (route, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{kind: routeBase}, path == "/v2"
	}
	if rest == "" {
		return route{kind: routeBase}, true
	}
	if rest == "_catalog" {
		return route{kind: routeCatalog}, true
	}
	parts := strings.Split(rest, "/")
	n := len(parts)
	name := func(k int) string { return strings.Join(parts[:n-k], "/") }
	switch {
	case n >= 4 && parts[n-3] == "blobs" && parts[n-2] == "uploads" && parts[n-1] == "":
		return route{kind: routeUploadStart, name: name(3)}, true
	case n >= 3 && parts[n-2] == "blobs" && parts[n-1] == "uploads":
		return route{kind: routeUploadStart, name: name(2)}, true
	case n >= 4 && parts[n-3] == "blobs" && parts[n-2] == "uploads" && parts[n-1] != "":
		return route{kind: routeUpload, name: name(3), ref: parts[n-1]}, true
	case n >= 3 && parts[n-2] == "tags" && parts[n-1] == "list":
		return route{kind: routeTags, name: name(2)}, true
	case n >= 3 && parts[n-2] == "manifests" && parts[n-1] != "":
		return route{kind: routeManifest, name: name(2), ref: parts[n-1]}, true
	case n >= 3 && parts[n-2] == "blobs" && parts[n-1] != "":
		return route{kind: routeBlob, name: name(2), ref: parts[n-1]}, true
	case n >= 3 && parts[n-2] == "referrers" && parts[n-1] != "":
		return route{kind: routeReferrers, name: name(2), ref: parts[n-1]}, true
	}
	return route{}, false
}

// action names the ECR action a request performs (the decision point's
// input, and the CloudTrail event name without "ecr:"), or "" when the
// request needs authentication only.
func (rt route) action(method string) (string, bool) {
	switch rt.kind {
	case routeBase:
		return "", method == http.MethodGet || method == http.MethodHead
	case routeCatalog:
		return "ecr:DescribeRepositories", method == http.MethodGet
	case routeTags:
		return "ecr:ListImages", method == http.MethodGet
	case routeReferrers:
		return "ecr:BatchGetImage", method == http.MethodGet
	case routeManifest:
		switch method {
		case http.MethodGet, http.MethodHead:
			return "ecr:BatchGetImage", true
		case http.MethodPut:
			return "ecr:PutImage", true
		case http.MethodDelete:
			return "ecr:BatchDeleteImage", true
		}
	case routeBlob:
		switch method {
		case http.MethodGet:
			return "ecr:GetDownloadUrlForLayer", true
		case http.MethodHead:
			return "ecr:BatchCheckLayerAvailability", true
		case http.MethodDelete:
			return "ecr:BatchDeleteImage", true
		}
	case routeUploadStart:
		return "ecr:InitiateLayerUpload", method == http.MethodPost
	case routeUpload:
		switch method {
		case http.MethodGet, http.MethodPatch, http.MethodDelete:
			return "ecr:UploadLayerPart", true
		case http.MethodPut:
			return "ecr:CompleteLayerUpload", true
		}
	}
	return "", false
}
