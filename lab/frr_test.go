package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beaconlb/beacon/internal/golden"
)

// The router's FRR configuration, byte for byte; read it to review what
// the lab router does.
func TestFRRConfigsGolden(t *testing.T) {
	cfg := Config{Nodes: 2, PodsPerNode: 1, Router: RouterConfig{Passwords: map[string]string{"node2": "s3cret"}}}.withDefaults()
	topo, err := Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Router.validate(topo); err != nil {
		t.Fatal(err)
	}
	got := frrConfigs(topo, cfg.Router)
	if len(got) != len(frrDaemons) {
		t.Fatalf("configs for %d daemons, want %v", len(got), frrDaemons)
	}
	for _, d := range frrDaemons {
		golden.Check(t, filepath.Join("testdata", "frr", d+".conf"), []byte(got[d]))
	}
}

// The facts the issue asks of the router, independent of the golden file.
func TestFRRConfigsContent(t *testing.T) {
	cfg := Config{Nodes: 3, Router: RouterConfig{
		ASN: 65000, NodeASN: 65001,
		BFD: BFDProfile{TransmitInterval: 100 * time.Millisecond, ReceiveInterval: 150 * time.Millisecond, DetectMultiplier: 5},
	}}.withDefaults()
	topo, _ := Plan(cfg)
	c := frrConfigs(topo, cfg.Router)
	for _, want := range []string{
		"router bgp 65000\n", " bgp router-id 198.51.100.1\n", " bgp graceful-restart\n", " no bgp ebgp-requires-policy\n",
		" bgp bestpath as-path multipath-relax\n", " neighbor nodes-v4 remote-as 65001\n", " neighbor nodes-v6 remote-as 65001\n",
		" neighbor nodes-v4 bfd profile " + BFDProfileName + "\n", " neighbor 198.51.100.13 peer-group nodes-v4\n",
		" neighbor 2001:db8:100::13 peer-group nodes-v6\n", "  maximum-paths 16\n",
		// GRACEFUL_SHUTDOWN honoured on both families.
		"bgp community-list standard gshut seq 5 permit 65535:0\n", "  neighbor nodes-v4 route-map nodes-v4-in in\n",
		"route-map nodes-v4-in permit 5\n match community gshut\n set local-preference 0\n",
		"route-map nodes-v6-in permit 5\n match community gshut\n set local-preference 0\n",
	} {
		if !strings.Contains(c["bgpd"], want) {
			t.Errorf("bgpd.conf lacks %q:\n%s", want, c["bgpd"])
		}
	}
	if strings.Count(c["bgpd"], "maximum-paths 16") != 2 || strings.Contains(c["bgpd"], "password") {
		t.Errorf("bgpd.conf:\n%s", c["bgpd"])
	}
	for _, want := range []string{"profile " + BFDProfileName + "\n", "transmit-interval 100\n", "receive-interval 150\n", "detect-multiplier 5\n"} {
		if !strings.Contains(c["bfdd"], want) {
			t.Errorf("bfdd.conf lacks %q:\n%s", want, c["bfdd"])
		}
	}
	// Nothing routes into the BGP pools but BGP: no static route anywhere.
	for d, text := range c {
		if strings.Contains(text, "ip route") || strings.Contains(text, "203.0.113") || strings.Contains(text, "2001:db8:203") {
			t.Errorf("%s.conf routes the BGP pool statically:\n%s", d, text)
		}
	}
}

func TestRouterConfigValidate(t *testing.T) {
	topo, _ := Plan(Config{Nodes: 2})
	for _, c := range []struct {
		name string
		rc   RouterConfig
		ok   bool
	}{
		{"defaults", RouterConfig{}, true},
		{"password", RouterConfig{Passwords: map[string]string{"node1": "a-b_c.d"}}, true},
		{"fast BFD", RouterConfig{BFD: BFDProfile{TransmitInterval: 10 * time.Millisecond, ReceiveInterval: 10 * time.Millisecond, DetectMultiplier: 2}}, true},
		{"unknown node", RouterConfig{Passwords: map[string]string{"node3": "x"}}, false},
		{"blank in password", RouterConfig{Passwords: map[string]string{"node1": "a b"}}, false},
		{"comment in password", RouterConfig{Passwords: map[string]string{"node1": "a!b"}}, false},
		{"long password", RouterConfig{Passwords: map[string]string{"node1": strings.Repeat("x", 81)}}, false},
		{"sub-ms BFD", RouterConfig{BFD: BFDProfile{TransmitInterval: 1500 * time.Microsecond}}, false},
		{"too fast BFD", RouterConfig{BFD: BFDProfile{ReceiveInterval: 5 * time.Millisecond}}, false},
		{"multiplier 1", RouterConfig{BFD: BFDProfile{DetectMultiplier: 1}}, false},
	} {
		err := c.rc.withDefaults().validate(topo)
		if (err == nil) != c.ok {
			t.Errorf("%s: validate = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestRouterConfigDefaults(t *testing.T) {
	c := RouterConfig{}.withDefaults()
	if c.ASN != 64512 || c.NodeASN != 64513 || c.BFD.TransmitInterval != 300*time.Millisecond ||
		c.BFD.ReceiveInterval != 300*time.Millisecond || c.BFD.DetectMultiplier != 3 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestVtyshArgv(t *testing.T) {
	got := strings.Join(VtyshArgv("-c", "show bgp summary"), " ")
	if want := "vtysh --vty_socket /run/beacon-lab/frr/vty --config_dir /run/beacon-lab/frr -c show bgp summary"; got != want {
		t.Errorf("VtyshArgv: %q, want %q", got, want)
	}
}

// The parsers read what FRR 8.4 prints (testdata/frr/*.json, trimmed
// captures from this machine's FRR).
func TestParseFRRJSON(t *testing.T) {
	read := func(name string, v any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", "frr", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	var nraw map[string]json.RawMessage
	read("neighbors.json", &nraw)
	nbs, err := parseNeighbors(nraw)
	if err != nil {
		t.Fatal(err)
	}
	if len(nbs) != 2 ||
		nbs[0] != (BGPNeighbor{Address: mustAddr("198.51.100.11"), RemoteAS: 64513, PeerGroup: "nodes-v4", State: "Established", Established: 5 * time.Second, PrefixesAccepted: 1}) ||
		nbs[1] != (BGPNeighbor{Address: mustAddr("2001:db8:100::12"), RemoteAS: 64513, PeerGroup: "nodes-v6", State: "Active"}) {
		t.Errorf("neighbours: %+v", nbs)
	}

	var braw []json.RawMessage
	read("bfd-peers.json", &braw)
	peers, err := parseBFDPeers(braw)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || peers[0].Peer != mustAddr("198.51.100.12") || peers[0].Status != "up" || peers[0].Interface != "eth0" ||
		peers[0].TransmitInterval != 300*time.Millisecond || peers[0].DetectMultiplier != 3 ||
		peers[1].Peer != mustAddr("2001:db8:100::11") || peers[1].Status != "down" || peers[1].Local != mustAddr("2001:db8:100::1") {
		t.Errorf("BFD peers: %+v", peers)
	}

	var praw struct {
		Paths []json.RawMessage `json:"paths"`
	}
	read("route.json", &praw)
	paths, err := ParseBGPPaths(praw.Paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("paths: %+v", paths)
	}
	p0, p1 := paths[0], paths[1]
	if p0.Peer != mustAddr("198.51.100.11") || len(p0.NextHops) != 1 || p0.NextHops[0] != p0.Peer || p0.ASPath != "64513" ||
		!p0.Best || !p0.Multipath || !p0.Valid || p0.Stale || p0.LocalPref != nil ||
		strings.Join(p0.Communities, ",") != "64513:100,no-export" || strings.Join(p0.LargeCommunities, ",") != "64513:1:2" {
		t.Errorf("path 0: %+v", p0)
	}
	if p1.Peer != mustAddr("198.51.100.12") || p1.Best || !p1.Stale || p1.LocalPref == nil || *p1.LocalPref != 200 || p1.Communities != nil {
		t.Errorf("path 1: %+v", p1)
	}
}

func TestParsePathsEmpty(t *testing.T) {
	// FRR prints {} for an unknown prefix.
	var raw struct {
		Paths []json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte("{\n}\n"), &raw); err != nil {
		t.Fatal(err)
	}
	if p, err := ParseBGPPaths(raw.Paths); err != nil || len(p) != 0 {
		t.Errorf("ParseBGPPaths({}) = %v, %v", p, err)
	}
}
