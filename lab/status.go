package lab

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// LinkStatus is one interface of a lab namespace.
type LinkStatus struct {
	Name, MAC, State, Master string
	Addrs                    []string
}

// NetnsStatus is one lab namespace and its links (lo omitted).
type NetnsStatus struct {
	Name  string
	Links []LinkStatus
	Err   string
}

// ProcessStatus is one recorded process.
type ProcessStatus struct {
	Name, Netns string
	Pid         int
	Running     bool
}

// StatusReport describes whatever lab exists on this machine.
type StatusReport struct {
	Namespaces []NetnsStatus
	Processes  []ProcessStatus
	// LockHolder is the pid written in the lock file (may be stale).
	LockHolder string
	// APIServer is "ready (...)" or why not.
	APIServer string
	// BGP and BFD are the router's neighbours and BFD sessions; Router
	// says why they are missing ("" when read).
	BGP    []BGPNeighbor
	BFD    []BFDPeer
	Router string
}

// Status inspects the lab on this machine (running or leftover) without
// changing it.
func Status(ctx context.Context) (*StatusReport, error) {
	r := &StatusReport{}
	if b, err := os.ReadFile(LockPath); err == nil {
		r.LockHolder = strings.TrimSpace(string(b))
	}
	names, err := ListNetns()
	if err != nil {
		return nil, err
	}
	for _, ns := range names {
		r.Namespaces = append(r.Namespaces, netnsStatus(ns))
	}
	procs, err := loadProcesses(StateDir)
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		r.Processes = append(r.Processes, ProcessStatus{Name: p.Name, Netns: p.Netns, Pid: p.Pid, Running: p.Alive()})
	}
	r.APIServer = apiStatus(ctx)
	r.BGP, r.BFD, r.Router = routerStatus(ctx)
	return r, nil
}

// routerStatus reads the router's BGP neighbours and BFD sessions through
// vtysh (it needs no Lab value: the vty sockets are at fixed paths).
func routerStatus(ctx context.Context) ([]BGPNeighbor, []BFDPeer, string) {
	if _, err := os.Stat(filepath.Join(FRRDir, "vty", "bgpd.vty")); err != nil {
		return nil, nil, "FRR not running (no bgpd vty socket)"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r := &BGPRouter{topo: Topology{Router: station(Router, 1)}, dir: FRRDir}
	nb, err := r.Neighbors(ctx)
	if err != nil {
		return nil, nil, "bgpd: " + err.Error()
	}
	bfd, err := r.BFDPeers(ctx)
	if err != nil {
		return nb, nil, "bfdd: " + err.Error()
	}
	return nb, bfd, ""
}

func netnsStatus(ns string) NetnsStatus {
	st := NetnsStatus{Name: ns}
	fd, err := netns.GetFromPath(filepath.Join(NetnsDir, ns))
	if err != nil {
		st.Err = err.Error()
		return st
	}
	defer func() { _ = fd.Close() }()
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		st.Err = err.Error()
		return st
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		st.Err = err.Error()
		return st
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" {
			continue
		}
		ls := LinkStatus{Name: a.Name, MAC: a.HardwareAddr.String(), State: a.OperState.String(), Master: names[a.MasterIndex]}
		addrs, _ := h.AddrList(l, netlink.FAMILY_ALL)
		for _, ad := range addrs {
			if ad.IP.IsLinkLocalUnicast() {
				continue
			}
			ls.Addrs = append(ls.Addrs, ad.IPNet.String())
		}
		st.Links = append(st.Links, ls)
	}
	sort.Slice(st.Links, func(i, j int) bool { return st.Links[i].Name < st.Links[j].Name })
	return st
}

func apiStatus(ctx context.Context) string {
	kc := filepath.Join(StateDir, "kubeconfig")
	if _, err := os.Stat(kc); err != nil {
		return "no kubeconfig"
	}
	cfg, err := restConfigFromKubeconfig(kc)
	if err != nil {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := waitAPIServer(ctx, cfg); err != nil {
		return "not ready: " + err.Error()
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err.Error()
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "ready, but listing nodes failed: " + err.Error()
	}
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "ready, but listing pods failed: " + err.Error()
	}
	return fmt.Sprintf("ready at %s (%d nodes, %d pods); kubeconfig %s", cfg.Host, len(nodes.Items), len(pods.Items), kc)
}

// WriteTo prints the report for people.
func (r *StatusReport) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	if len(r.Namespaces) == 0 && len(r.Processes) == 0 {
		n, err := io.WriteString(w, "no lab on this machine\n")
		return int64(n), err
	}
	if r.LockHolder != "" {
		_, _ = fmt.Fprintf(&b, "lock %s: last holder pid %s\n", LockPath, r.LockHolder)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintf(tw, "NAMESPACE\tLINK\tMAC\tSTATE\tADDRESSES\n")
	for _, ns := range r.Namespaces {
		if ns.Err != "" {
			_, _ = fmt.Fprintf(tw, "%s\t\t\t\terror: %s\n", ns.Name, ns.Err)
		}
		for _, l := range ns.Links {
			addrs := strings.Join(l.Addrs, " ")
			if l.Master != "" {
				addrs = "port of " + l.Master
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ns.Name, l.Name, l.MAC, l.State, addrs)
		}
	}
	_ = tw.Flush()
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintf(tw, "PROCESS\tPID\tNAMESPACE\tSTATE\n")
	for _, p := range r.Processes {
		state := "running"
		if !p.Running {
			state = "gone"
		}
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.Name, p.Pid, p.Netns, state)
	}
	_ = tw.Flush()
	_, _ = fmt.Fprintf(&b, "\napi server: %s\n", r.APIServer)
	b.WriteString("\n")
	if r.Router != "" {
		_, _ = fmt.Fprintf(&b, "router: %s\n", r.Router)
	}
	if len(r.BGP) > 0 {
		bfd := map[netip.Addr]string{}
		for _, p := range r.BFD {
			bfd[p.Peer] = p.Status
		}
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		_, _ = fmt.Fprintf(tw, "BGP NEIGHBOR (router)\tAS\tGROUP\tSTATE\tUP\tPREFIXES\tBFD\n")
		for _, n := range r.BGP {
			up, st := "-", bfd[n.Address]
			if n.State == "Established" {
				up = n.Established.Round(time.Second).String()
			}
			if st == "" {
				st = "-"
			}
			_, _ = fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\n", n.Address, n.RemoteAS, n.PeerGroup, n.State, up, n.PrefixesAccepted, st)
		}
		_ = tw.Flush()
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
