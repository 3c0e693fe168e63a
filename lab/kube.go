package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// API server endpoints inside the host namespace.
const (
	APIServerPort = 6443
	etcdClientURL = "http://127.0.0.1:2379"
	etcdPeerURL   = "http://127.0.0.1:2380"
	adminUser     = "beacon-lab-admin"
	kubeContext   = "beacon-lab"
)

// Names of the lab's own tracked processes.
const (
	procEtcd      = "etcd"
	procAPIServer = "kube-apiserver"
	procDaemon    = "lab-daemon"
)

// pki holds the lab's credentials: a CA, the API server's serving cert, a
// service-account signing key and a static admin token.
type pki struct {
	CA, Cert, Key, SAKey, SAPub []byte // PEM
	Token                       string
}

func newPKI(host Station) (*pki, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "beacon-lab-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, a := range []netip.Addr{
		host.IPv4, host.IPv6, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback(),
		ServicesV4.Addr().Next(), ServicesV6.Addr().Next(),
	} {
		ips = append(ips, a.AsSlice())
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	return &pki{
		CA:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		SAKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER}),
		SAPub: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
		Token: hex.EncodeToString(tok),
	}, nil
}

// write stores the credentials under dir/pki and returns the file paths.
func (p *pki) write(dir string) (map[string]string, error) {
	d := filepath.Join(dir, "pki")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"ca.crt":        p.CA,
		"apiserver.crt": p.Cert,
		"apiserver.key": p.Key,
		"sa.key":        p.SAKey,
		"sa.pub":        p.SAPub,
		"tokens.csv":    []byte(fmt.Sprintf("%s,%s,%s,\"system:masters\"\n", p.Token, adminUser, adminUser)),
		"audit.yaml":    []byte(auditPolicy),
	}
	paths := map[string]string{"audit.log": AuditLogPath(dir)}
	for name, b := range files {
		paths[name] = filepath.Join(d, name)
		if err := os.WriteFile(paths[name], b, 0o600); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// auditPolicy records the verdict of every request made with a
// ServiceAccount token (the chart's daemons run with those), and nothing
// else: tests count denied requests (code 403) per account.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
`

// AuditLogPath is the API server's audit log (JSON lines, one event per
// request made with a ServiceAccount token) of the lab in stateDir.
func AuditLogPath(stateDir string) string { return filepath.Join(stateDir, "pki", "audit.log") }

// apiServerURL is where every lab namespace on the LAN reaches the API.
func apiServerURL(host Station) string {
	return "https://" + net.JoinHostPort(host.IPv4.String(), strconv.Itoa(APIServerPort))
}

// writeKubeconfig writes an admin kubeconfig for the LAN address of the
// API server (usable from every LAN namespace and their processes).
func writeKubeconfig(path string, host Station, p *pki) error {
	c := clientcmdapi.NewConfig()
	c.Clusters[kubeContext] = &clientcmdapi.Cluster{Server: apiServerURL(host), CertificateAuthorityData: p.CA}
	c.AuthInfos[kubeContext] = &clientcmdapi.AuthInfo{Token: p.Token}
	c.Contexts[kubeContext] = &clientcmdapi.Context{Cluster: kubeContext, AuthInfo: kubeContext, Namespace: "default"}
	c.CurrentContext = kubeContext
	return clientcmd.WriteToFile(*c, path)
}

// restConfigFromKubeconfig loads the lab kubeconfig and makes it dial inside
// the host namespace, so callers in any namespace (the root one included)
// reach the API server without any route to the lab.
func restConfigFromKubeconfig(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	cfg.Dial = Dialer(Host)
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

func etcdSpec(assets, dir string) ProcessSpec {
	return ProcessSpec{Name: procEtcd, Netns: Host, Argv: []string{
		filepath.Join(assets, "etcd"),
		"--name=default",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdClientURL,
		"--advertise-client-urls=" + etcdClientURL,
		"--listen-peer-urls=" + etcdPeerURL,
		"--initial-advertise-peer-urls=" + etcdPeerURL,
		"--initial-cluster=default=" + etcdPeerURL,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}}
}

func apiServerSpec(assets string, host Station, files map[string]string) ProcessSpec {
	return ProcessSpec{Name: procAPIServer, Netns: Host, Argv: []string{
		filepath.Join(assets, "kube-apiserver"),
		"--etcd-servers=" + etcdClientURL,
		"--bind-address=::",
		"--secure-port=" + strconv.Itoa(APIServerPort),
		"--advertise-address=" + host.IPv4.String(),
		"--tls-cert-file=" + files["apiserver.crt"],
		"--tls-private-key-file=" + files["apiserver.key"],
		"--token-auth-file=" + files["tokens.csv"],
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + apiServerURL(host),
		"--service-account-key-file=" + files["sa.pub"],
		"--service-account-signing-key-file=" + files["sa.key"],
		"--service-cluster-ip-range=" + ServiceCIDRs,
		"--audit-policy-file=" + files["audit.yaml"],
		"--audit-log-path=" + files["audit.log"],
		"--audit-log-maxbackup=1",
		// No controller creates the "default" ServiceAccount (envtest does
		// the same).
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=0",
	}}
}

// waitAPIServer polls /readyz (from the host namespace) until it answers
// 200, the API server process dies, or ctx ends.
func waitAPIServer(ctx context.Context, cfg *rest.Config, procs ...*Process) error {
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return err
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	hc := &http.Client{
		Transport: &http.Transport{DialContext: cfg.Dial, TLSClientConfig: tlsCfg, DisableKeepAlives: true},
		Timeout:   2 * time.Second,
	}
	url := cfg.Host + "/readyz"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+cfg.BearerToken)
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		for _, p := range procs {
			if !p.Alive() {
				return fmt.Errorf("lab: %s exited while waiting for the API server; log tail:\n%s", p.Name, LogTail(p.Log, 3000))
			}
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("lab: API server not ready (%s): %w", last, ctx.Err())
			for _, p := range procs {
				err = fmt.Errorf("%w\n--- %s log tail:\n%s", err, p.Name, LogTail(p.Log, 1500))
			}
			return err
		case <-tick.C:
		}
	}
}

// installCRDs applies every CRD in dir and waits until they are served.
func installCRDs(ctx context.Context, cfg *rest.Config, dir string) error {
	_, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths:              []string{dir},
		ErrorIfPathMissing: true,
		MaxTime:            30 * time.Second,
		PollInterval:       50 * time.Millisecond,
	})
	if err != nil {
		return fmt.Errorf("lab: install CRDs from %s: %w", dir, err)
	}
	return ctx.Err()
}
