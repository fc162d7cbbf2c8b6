package server

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/internal/auth/presign"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/ecrapi"
	"github.com/cofferhq/coffer/internal/endpoint"
	"github.com/cofferhq/coffer/internal/metadata"
)

const settingPresignKey = "presign_signing_key"

// presignKey returns the key of presigned layer download URLs
// (GetDownloadUrlForLayer), generated once and kept sealed under the root
// key in the metadata store, like the registry-token key but separate from
// it: a URL key cannot mint registry tokens, nor a token key URLs, and
// every replica sharing the metadata verifies the same URLs.
func presignKey(ctx context.Context, store metadata.Store, root *rootkey.Key) (*presign.Key, error) {
	key, err := sealedSecret(ctx, store, root, settingPresignKey, "presign key")
	if err != nil {
		return nil, err
	}
	return presign.NewKey(key)
}

// layerDownloadMount is the pipeline route of presigned layer downloads.
var layerDownloadMount = strings.TrimSuffix(ecrapi.LayerDownloadPath, "/")

// s3Service: presigned layer downloads are the s3 service (SPEC STO-03).
func s3Service(*http.Request) string { return endpoint.ServiceS3 }

// downloadBase picks where GetDownloadUrlForLayer URLs point (#7, the s3
// service): the endpoint the call came through when it serves presigned
// downloads (the public listener serves everything: ok false, the
// request's own scheme and Host), otherwise an endpoint of the same VPC
// that does, by its first DNS name and port. Without one, also the
// caller's endpoint, which refuses the download: the network has no path
// to the layers, as on AWS without an S3 gateway endpoint.
func downloadBase(eps []*endpoint.Endpoint) func(r *http.Request) (scheme, host string, ok bool) {
	return func(r *http.Request) (string, string, bool) {
		ep := endpoint.For(r.Context())
		if ep == nil || ep.Serves(endpoint.ServiceS3) {
			return "", "", false
		}
		for _, o := range eps {
			if o.Public || o.VPCID != ep.VPCID || !o.Serves(endpoint.ServiceS3) || len(o.Listen) == 0 {
				continue
			}
			_, port, err := net.SplitHostPort(o.Listen[0])
			if err != nil {
				continue
			}
			for _, n := range o.DNSNames {
				if !strings.HasPrefix(n, "*.") {
					s := "https"
					if o.Insecure {
						s = "http"
					}
					return s, net.JoinHostPort(n, port), true
				}
			}
		}
		return "", "", false
	}
}
