//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The network endpoints of TestEndpointsAWSCLIDocker (docs/endpoints.md,
// issue #7). Account and region replace appendix A's placeholders
// ("1234567890", "region") in the endpoint policies.
const (
	vpceRegion  = "us-east-1"
	vpceAccount = "111122223333"

	vpceAPIID  = "vpce-0e2e0000000000a01" // ecr.api only, J-09, 127.0.0.2
	vpceDKRID  = "vpce-0e2e0000000000d02" // ecr.dkr only, J-09, [::1]
	vpcePullID = "vpce-0e2e0000000000b03" // ecr.api + ecr.dkr, J-07, [::1]

	vpceAPIName  = "api.ecr.us-east-1.vpce-e2e.test"
	vpceDKRName  = "dkr.ecr.us-east-1.vpce-e2e.test"
	vpcePullName = "pull.ecr.us-east-1.vpce-e2e.test"

	vpceProtected = "repository_name" // J-08/J-09's PreventDelete target
	vpceRole      = "role_name"       // J-07/J-09's AllowPull principal

	// etcHostsLock serialises this package's edits of /etc/hosts (the file
	// itself may be replaced by rename, so it cannot carry the lock).
	etcHostsLock = "/tmp/coffer-e2e-etc-hosts.lock"
	dockerCerts  = "/etc/docker/certs.d"
)

// The appendix-A endpoint policies as SPEC normalises them (J-07 and J-09),
// placeholders replaced.
var (
	vpcePolicyJ07 = `{ "Statement": [{ "Sid": "AllowPull", "Principal": { "AWS": "arn:aws:iam::` + vpceAccount + `:role/` + vpceRole + `" }, "Action": [ "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:GetAuthorizationToken" ], "Effect": "Allow", "Resource": "*" }] }`
	vpcePolicyJ09 = `{ "Statement": [{ "Sid": "AllowAll", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*" }, { "Sid": "PreventDelete", "Effect": "Deny", "Principal": "*", "Action": "ecr:DeleteRepository", "Resource": "arn:aws:ecr:` + vpceRegion + `:` + vpceAccount + `:repository/` + vpceProtected + `" }, { "Sid": "AllowPull", "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::` + vpceAccount + `:role/` + vpceRole + `" }, "Action": [ "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:GetAuthorizationToken" ], "Resource": "*" } ] }`
)

// TestEndpointsAWSCLIDocker drives Coffer's network endpoints (issue #7)
// with the real aws CLI, the real docker engine and curl, through private
// DNS names in /etc/hosts and TLS from the generated private CA:
//
//   - api (127.0.0.2, ecr.api, J-09, allows 127.0.0.1/32): the aws CLI with
//     --ca-bundle; proxyEndpoint is its name; PreventDelete refuses
//     DeleteRepository on repository_name to the admin and the role with
//     AWS's message; another repository is deleted; /v2/ is refused; a
//     client bound to 127.0.0.9 is reset before any TLS or HTTP.
//   - dkr ([::1], ecr.dkr, J-09): docker login/push/pull once the daemon
//     trusts the CA in /etc/docker/certs.d (and not before); curl
//     --cacert verifies the chain; `aws ecr` is refused; a Host that is
//     not its DNS name gets 421.
//   - pull ([::1], both services, J-07): role_name logs in at the
//     proxyEndpoint it is given and pulls, but its push is denied; the
//     admin's get-login-password is denied by the endpoint policy.
//
// The docker-facing endpoints listen on ::1 on purpose: dockerd treats
// every registry that resolves into 127.0.0.0/8 as insecure (it skips
// certificate verification and ignores certs.d), so only a name resolving
// elsewhere proves that docker verifies the private CA.
//
// It edits /etc/hosts and /etc/docker/certs.d (undone at cleanup), so it
// must run as root, as it does in CI.
func TestEndpointsAWSCLIDocker(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("TestEndpointsAWSCLIDocker must run as root (uid %d): it adds its private DNS names to /etc/hosts and the generated CA to %s", os.Geteuid(), dockerCerts)
	}
	ctx := testContext(t, 3*time.Minute)
	requireTool(t, "aws")
	requireTool(t, "curl")
	admin := newDockerCLI(t, ctx)
	roleDocker := newDockerCLI(t, ctx)

	apiAddr := vpceFreeAddr(t, "127.0.0.2")
	dkrAddr := vpceFreeAddr(t, "::1")
	pullAddr := vpceFreeAddr(t, "::1")
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	apiHost := vpceAPIName + ":" + port(apiAddr)
	dkrHost := vpceDKRName + ":" + port(dkrAddr)
	pullHost := vpcePullName + ":" + port(pullAddr)
	apiURL, dkrURL, pullURL := "https://"+apiHost, "https://"+dkrHost, "https://"+pullHost

	// Name resolution first: the docker daemon's resolver may cache
	// /etc/hosts for a few seconds, and coffer's start-up takes longer.
	vpceAddHosts(t, [][2]string{{"127.0.0.2", vpceAPIName}, {"::1", vpceDKRName}, {"::1", vpcePullName}})

	cfgDir := t.TempDir()
	j07, j09 := filepath.Join(cfgDir, "j07.json"), filepath.Join(cfgDir, "j09.json")
	vpceWriteFile(t, j07, vpcePolicyJ07)
	vpceWriteFile(t, j09, vpcePolicyJ09)
	cfgPath := filepath.Join(cfgDir, "coffer.yaml")
	vpceWriteFile(t, cfgPath, fmt.Sprintf(`version: 1
region: %[1]s
account_id: "%[2]s"
endpoints:
  - id: %[3]s
    vpc_id: vpc-0e2e00000000api
    listen: ["%[4]s"]
    services: [ecr.api]
    dns_names: [%[5]s]
    allowed_cidrs: [127.0.0.1/32]
    policy_file: %[6]s
  - id: %[7]s
    vpc_id: vpc-0e2e00000000dkr
    listen: ["%[8]s"]
    services: [ecr.dkr]
    dns_names: [%[9]s]
    allowed_cidrs: ["::1/128"]
    policy_file: %[6]s
  - id: %[10]s
    vpc_id: vpc-0e2e0000000pull
    listen: ["%[11]s"]
    services: [ecr.api, ecr.dkr]
    dns_names: [%[12]s]
    allowed_cidrs: ["::1/128"]
    policy_file: %[13]s
`, vpceRegion, vpceAccount, vpceAPIID, apiAddr, vpceAPIName, j09,
		vpceDKRID, dkrAddr, vpceDKRName, vpcePullID, pullAddr, vpcePullName, j07))
	c := startCoffer(t, func(c *coffer) { c.Args = append(c.Args, "--config", cfgPath) })

	caPath := filepath.Join(c.Dir, "tls", "ca.crt")
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatalf("the generated private CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("%s holds no PEM certificate", caPath)
	}

	awsCall := func(env []string, url string, args ...string) (string, error) {
		args = append(args, "--endpoint-url", url, "--output", "json")
		if strings.HasPrefix(url, "https://") {
			args = append(args, "--ca-bundle", caPath)
		}
		return runErr(ctx, env, nil, "aws", args...)
	}
	aws := func(env []string, url string, args ...string) map[string]any {
		t.Helper()
		out, err := awsCall(env, url, args...)
		if err != nil {
			t.Fatalf("%v", err)
		}
		var m map[string]any
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("aws %v: output is not JSON: %v\n%s", args, err, out)
			}
		}
		return m
	}
	// awsDenied runs a call that must fail with AWS's error code and a
	// message containing want.
	awsDenied := func(env []string, url, code, want string, args ...string) {
		t.Helper()
		out, err := awsCall(env, url, args...)
		if err == nil {
			t.Fatalf("aws %v through %s succeeded, want %s: %s\n%s", args, url, code, want, out)
		}
		if !strings.Contains(err.Error(), "("+code+")") || !strings.Contains(err.Error(), want) {
			t.Fatalf("aws %v through %s: want (%s) ... %s; got %v", args, url, code, want, err)
		}
	}
	adminEnv := c.awsEnv()
	adminARN := "arn:aws:iam::" + vpceAccount + ":user/admin"
	protectedARN := "arn:aws:ecr:" + vpceRegion + ":" + vpceAccount + ":repository/" + vpceProtected

	t.Run("TLS chain and Host names", func(t *testing.T) {
		// curl verifies the chain to the private CA under the DNS name, and
		// only with it.
		for _, tc := range []struct{ url, code string }{
			{dkrURL + "/v2/", "401"},  // the registry door, asking for credentials
			{apiURL + "/v2/", "403"},  // ecr.api only: the registry door is refused
			{pullURL + "/v2/", "401"}, // both services
		} {
			out := run(t, ctx, nil, nil, "curl", "-sS", "--noproxy", "*", "--max-time", "10", "--cacert", caPath,
				"-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}", tc.url)
			if out != tc.code+" 0" {
				t.Errorf("curl --cacert %s %s: status and ssl_verify_result %q, want %q", caPath, tc.url, out, tc.code+" 0")
			}
		}
		if out, err := runErr(ctx, nil, nil, "curl", "-sS", "--noproxy", "*", "--max-time", "10", "-o", "/dev/null", dkrURL+"/v2/"); err == nil ||
			!strings.Contains(err.Error(), "exit status 60") {
			t.Errorf("curl %s without --cacert = %v %s, want exit status 60 (certificate not verified)", dkrURL, err, out)
		}

		// A Host outside the endpoint's DNS names is refused with 421, even
		// on a connection whose certificate verified (the listen IP is a SAN).
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, dkrAddr)
			},
		}}
		defer hc.CloseIdleConnections()
		for _, tc := range []struct{ url, host string }{
			{dkrURL + "/v2/", "other.ecr.us-east-1.vpce-e2e.test:" + port(dkrAddr)},
			{dkrURL + "/v2/", apiHost},
			{"https://" + dkrAddr + "/v2/", ""},
		} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Errorf("GET %s Host %q: %v", tc.url, req.Host, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("GET %s Host %q: %s, want 421 Misdirected Request", tc.url, req.Host, resp.Status)
			}
		}
	})

	t.Run("a source outside allowed_cidrs gets no HTTP response", func(t *testing.T) {
		client := func(local string) *http.Client {
			d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
			return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool},
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return d.DialContext(ctx, network, apiAddr)
				},
			}}
		}
		// Control: the same request from 127.0.0.1 gets an answer.
		resp, err := client("127.0.0.1").Get(apiURL + "/v2/")
		if err != nil {
			t.Fatalf("GET %s from 127.0.0.1 (allowed): %v", apiURL, err)
		}
		resp.Body.Close()
		if resp, err := client("127.0.0.9").Get(apiURL + "/v2/"); err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s from 127.0.0.9 (outside 127.0.0.1/32) got %s, want no HTTP response", apiURL, resp.Status)
		} else {
			t.Logf("from 127.0.0.9: %v", err)
		}
		// At the TCP level: the connection is closed without a byte (no TLS
		// handshake), promptly rather than by a timeout.
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
		var ne net.Error
		if conn, err := d.DialContext(ctx, "tcp", apiAddr); err != nil {
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("dial from 127.0.0.9: %v, want a prompt reset", err)
			}
			t.Logf("dial from 127.0.0.9: %v", err)
		} else {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 512)
			n, err := conn.Read(buf)
			if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
				t.Fatalf("raw connection from 127.0.0.9: read %d bytes %q, err %v; want the connection closed without any byte", n, buf[:n], err)
			}
		}
		// The refusal is logged, naming the endpoint and the source.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			logs := c.logs.String()
			if strings.Contains(logs, "connection refused by endpoint source rule") && strings.Contains(logs, vpceAPIID) && strings.Contains(logs, "127.0.0.9") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no log line for the refused connection from 127.0.0.9 to %s", vpceAPIID)
			}
		}
	})

	// The aws CLI through the api endpoint's name, trusting the CA only
	// through --ca-bundle.
	if out, err := runErr(ctx, adminEnv, nil, "aws", "ecr", "describe-repositories", "--endpoint-url", apiURL); err == nil ||
		!strings.Contains(err.Error(), "SSL validation failed") {
		t.Fatalf("aws without --ca-bundle = %v %s, want SSL validation failed", err, out)
	}
	auth := aws(adminEnv, apiURL, "ecr", "get-authorization-token")
	if got := vpceProxyEndpoint(t, auth); got != apiURL {
		t.Errorf("GetAuthorizationToken through %s: proxyEndpoint %s, want the endpoint's DNS name %s", vpceAPIID, got, apiURL)
	}
	adminToken := strings.TrimSpace(run(t, ctx, adminEnv, nil, "aws", "ecr", "get-login-password", "--endpoint-url", apiURL, "--ca-bundle", caPath))

	// docker: the daemon verifies the dkr endpoint's certificate, so the
	// login fails until the CA is in certs.d.
	out, err := runErr(ctx, admin.env, strings.NewReader(adminToken), "docker", "login", "-u", "AWS", "--password-stdin", dkrHost)
	if err == nil || !strings.Contains(err.Error(), "x509") {
		t.Fatalf("docker login %s before trusting the CA = %v %s, want an x509 verification error", dkrHost, err, out)
	}
	vpceTrustInDocker(t, dkrHost, caPEM)
	vpceTrustInDocker(t, pullHost, caPEM)
	vpceDockerLogin(t, admin, dkrHost, adminToken)

	app := dkrHost + "/e2e/vpce/app:v1"
	admin.removeOnCleanup(app)
	admin.importImage(app, map[string]string{"etc/vpce-e2e": "endpoint " + randomHex(t, 32) + "\n"})
	before := admin.inspect(app)
	digest := admin.push(app)
	admin.run("rmi", app)
	admin.run("pull", app)
	if after := admin.inspect(app); after.ID != before.ID {
		t.Fatalf("pulled through %s: image %s, pushed %s", vpceDKRID, after.ID, before.ID)
	}

	// repositoryUri, like proxyEndpoint, names the endpoint the call came through.
	repos := aws(adminEnv, apiURL, "ecr", "describe-repositories", "--repository-names", "e2e/vpce/app")
	if rs, _ := repos["repositories"].([]any); len(rs) != 1 {
		t.Errorf("describe-repositories e2e/vpce/app through %s: %v", vpceAPIID, repos)
	} else if uri := vpceStr(t, rs[0].(map[string]any), "repositoryUri"); uri != apiHost+"/e2e/vpce/app" {
		t.Errorf("repositoryUri through %s = %s, want %s/e2e/vpce/app", vpceAPIID, uri, apiHost)
	}

	// An ecr.dkr-only endpoint refuses the ECR API.
	awsDenied(adminEnv, dkrURL, "AccessDeniedException", "does not serve the ecr.api service", "ecr", "describe-repositories")

	// J-09 PreventDelete: DeleteRepository on repository_name is refused
	// with AWS's message; another repository is deleted.
	aws(adminEnv, apiURL, "ecr", "create-repository", "--repository-name", vpceProtected)
	aws(adminEnv, apiURL, "ecr", "create-repository", "--repository-name", "e2e/vpce/other")
	awsDenied(adminEnv, apiURL, "AccessDeniedException",
		"User: "+adminARN+" is not authorized to perform: ecr:DeleteRepository on resource: "+protectedARN+" with an explicit deny in a VPC endpoint policy",
		"ecr", "delete-repository", "--repository-name", vpceProtected, "--force")
	aws(adminEnv, apiURL, "ecr", "delete-repository", "--repository-name", "e2e/vpce/other")

	// role_name: J-07's AllowPull principal, with the PowerUser managed
	// policy so that only the endpoint policy stops its push.
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + adminARN + `"},"Action":"sts:AssumeRole"}]}`
	aws(adminEnv, c.URL(""), "iam", "create-role", "--role-name", vpceRole, "--assume-role-policy-document", trust)
	aws(adminEnv, c.URL(""), "iam", "attach-role-policy", "--role-name", vpceRole, "--policy-arn", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser")
	sess := aws(adminEnv, c.URL(""), "sts", "assume-role", "--role-arn", "arn:aws:iam::"+vpceAccount+":role/"+vpceRole, "--role-session-name", "puller")
	cred := func(k string) string { return vpceStr(t, sess, "Credentials", k) }
	roleEnv := append(c.awsEnv(), "AWS_ACCESS_KEY_ID="+cred("AccessKeyId"), "AWS_SECRET_ACCESS_KEY="+cred("SecretAccessKey"), "AWS_SESSION_TOKEN="+cred("SessionToken"))
	roleARN := "arn:aws:sts::" + vpceAccount + ":assumed-role/" + vpceRole + "/puller"

	// J-07 through the pull endpoint: the role gets a token and the
	// endpoint's name, logs in there and pulls; it cannot push.
	roleAuth := aws(roleEnv, pullURL, "ecr", "get-authorization-token")
	proxy := vpceProxyEndpoint(t, roleAuth)
	if proxy != pullURL {
		t.Errorf("GetAuthorizationToken through %s: proxyEndpoint %s, want %s", vpcePullID, proxy, pullURL)
	}
	tok, err := base64.StdEncoding.DecodeString(vpceStr(t, roleAuth["authorizationData"].([]any)[0].(map[string]any), "authorizationToken"))
	user, pass, ok := strings.Cut(string(tok), ":")
	if err != nil || !ok || user != "AWS" {
		t.Fatalf("authorizationToken does not decode to AWS:<password> (%v)", err)
	}
	vpceDockerLogin(t, roleDocker, strings.TrimPrefix(proxy, "https://"), pass)
	rolePull := pullHost + "/e2e/vpce/app:v1"
	roleDocker.removeOnCleanup(rolePull)
	admin.run("rmi", app) // so that the role's pull fetches the layers too
	roleDocker.run("pull", rolePull)
	if got := roleDocker.inspect(rolePull); got.ID != before.ID {
		t.Fatalf("role pull through %s: image %s, pushed %s", vpcePullID, got.ID, before.ID)
	}
	if ds := roleDocker.inspect(rolePull).RepoDigests; len(ds) != 1 || ds[0] != pullHost+"/e2e/vpce/app@"+digest.String() {
		t.Errorf("role pull RepoDigests %v, want %s/e2e/vpce/app@%s", ds, pullHost, digest)
	}
	rolePush := pullHost + "/e2e/vpce/role-push:v1"
	roleDocker.removeOnCleanup(rolePush)
	roleDocker.importImage(rolePush, map[string]string{"etc/role-push": randomHex(t, 32) + "\n"})
	if out, err := runErr(ctx, roleDocker.env, nil, "docker", "push", rolePush); err == nil ||
		!strings.Contains(err.Error(), "denied: User: "+roleARN+" is not authorized to perform: ecr:") ||
		!strings.Contains(err.Error(), "because no VPC endpoint policy allows the ecr:") {
		t.Errorf("role push through J-07 endpoint %s = %v %s\nwant denied because no VPC endpoint policy allows it", vpcePullID, err, out)
	} else {
		t.Logf("role push through J-07: %s", vpceLastLine(err.Error()))
	}
	// Everyone else is denied by J-07, the administrator included.
	awsDenied(adminEnv, pullURL, "AccessDeniedException", "because no VPC endpoint policy allows the ecr:GetAuthorizationToken action",
		"ecr", "get-login-password")
	admin.removeOnCleanup(rolePull)
	// The admin's token (from the api endpoint) opens /v2/ on the pull
	// endpoint, but J-07 refuses its pull.
	vpceDockerLogin(t, admin, pullHost, adminToken)
	if out, err := runErr(ctx, admin.env, nil, "docker", "pull", rolePull); err == nil ||
		!strings.Contains(err.Error(), "denied: User: "+adminARN+" is not authorized to perform: ecr:BatchGetImage") ||
		!strings.Contains(err.Error(), "because no VPC endpoint policy allows the ecr:BatchGetImage action") {
		t.Errorf("admin pull through J-07 endpoint %s = %v %s\nwant denied because no VPC endpoint policy allows ecr:BatchGetImage", vpcePullID, err, out)
	} else {
		t.Logf("admin pull through J-07: %s", vpceLastLine(err.Error()))
	}

	// J-09's PreventDelete refuses the role too; the public listener,
	// without an endpoint policy, lets the administrator delete.
	awsDenied(roleEnv, apiURL, "AccessDeniedException",
		"User: "+roleARN+" is not authorized to perform: ecr:DeleteRepository on resource: "+protectedARN+" with an explicit deny in a VPC endpoint policy",
		"ecr", "delete-repository", "--repository-name", vpceProtected, "--force")
	aws(adminEnv, c.URL(""), "ecr", "delete-repository", "--repository-name", vpceProtected, "--force")
}

func vpceWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// vpceFreeAddr returns a free TCP address on ip.
func vpceFreeAddr(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("probe a free port on %s: %v (the endpoints listen on 127.0.0.2 and ::1)", ip, err)
	}
	defer l.Close()
	return l.Addr().String()
}

func vpceStr(t *testing.T, m map[string]any, path ...string) string {
	t.Helper()
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: no %s in %v", path, p, v)
		}
		v = mm[p]
	}
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%v: %v is not a string", path, v)
	}
	return s
}

func vpceProxyEndpoint(t *testing.T, auth map[string]any) string {
	t.Helper()
	data, ok := auth["authorizationData"].([]any)
	if !ok || len(data) != 1 {
		t.Fatalf("GetAuthorizationToken: authorizationData %v", auth["authorizationData"])
	}
	m, _ := data[0].(map[string]any)
	return vpceStr(t, m, "proxyEndpoint")
}

func vpceLastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func vpceDockerLogin(t *testing.T, d *dockerCLI, host, password string) {
	t.Helper()
	out := run(t, d.ctx, d.env, strings.NewReader(password), "docker", "login", "-u", "AWS", "--password-stdin", host)
	if !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login %s: %s", host, out)
	}
}

// vpceAddHosts adds "ip name" lines to /etc/hosts for the test's duration,
// each tagged with a marker unique to this call; cleanup removes exactly
// those lines, whatever else was added or removed meanwhile.
func vpceAddHosts(t *testing.T, entries [][2]string) {
	t.Helper()
	marker := "# coffer-e2e " + randomHex(t, 16) + " " + t.Name()
	var add bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&add, "%s\t%s\t%s\n", e[0], e[1], marker)
	}
	if err := vpceEditHosts(func(old []byte) []byte {
		if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
			old = append(old, '\n')
		}
		return append(old, add.Bytes()...)
	}); err != nil {
		t.Fatalf("add %d names to /etc/hosts: %v", len(entries), err)
	}
	t.Cleanup(func() {
		if err := vpceEditHosts(func(old []byte) []byte {
			var keep []byte
			for _, line := range bytes.SplitAfter(old, []byte("\n")) {
				if !bytes.Contains(line, []byte(marker)) {
					keep = append(keep, line...)
				}
			}
			return keep
		}); err != nil {
			t.Errorf("remove this test's lines (%s) from /etc/hosts: %v", marker, err)
		}
	})
}

// vpceEditHosts rewrites /etc/hosts under an exclusive flock: atomically
// by rename where it can, in place where /etc/hosts is a mount point (as
// in containers).
func vpceEditHosts(edit func([]byte) []byte) error {
	const path = "/etc/hosts"
	lock, err := os.OpenFile(etcHostsLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("flock %s: %w", etcHostsLock, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	data := edit(old)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".hosts.coffer-e2e-*")
	if err == nil {
		_, err = tmp.Write(data)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), st.Mode().Perm())
		}
		if err == nil {
			if err = os.Rename(tmp.Name(), path); err == nil {
				return nil
			}
		}
		os.Remove(tmp.Name())
	}
	// A bind-mounted /etc/hosts cannot be replaced: rewrite it in place.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// vpceTrustInDocker makes the docker daemon trust ca for the registry
// host:port (/etc/docker/certs.d/HOST:PORT/ca.crt, read at every
// connection) until the test ends.
func vpceTrustInDocker(t *testing.T, hostport string, ca []byte) {
	t.Helper()
	_, statErr := os.Stat(dockerCerts)
	dir := filepath.Join(dockerCerts, hostport)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
		if os.IsNotExist(statErr) {
			os.Remove(dockerCerts) // only if empty: another test may use it
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
}
