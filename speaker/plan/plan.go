package plan

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// Result is what one sync must do. The agent hands BGP to the BGP speaker,
// programs the hand-off before the responders (clients move at once), and
// writes reports and Events off the sync path.
type Result struct {
	// State is the memory for the next sync.
	State State
	// L2 is nil while the plan waits for the member layer (a new peer not
	// yet heard from, or peers not yet settled): until then every peer
	// looks dead and this node would claim every address.
	L2 *L2
	// BGP is nil when BGP mode is off. BGP does not wait for the member
	// layer: every eligible node announces itself.
	BGP *BGP
	// Reports are the ServiceAnnouncements this node should have, sorted;
	// nil while L2 waits (the written ones stay).
	Reports []Report
	Events  []Event
	// Problems are addresses this node should announce but cannot.
	Problems []string
}

// Report is what this node announces for one Service in one mode (one
// ServiceAnnouncement).
type Report struct {
	Namespace, Service string
	Via                string // v1alpha1.ViaL2 or v1alpha1.ViaBGP
	Addresses          []netip.Addr
	Interfaces         []string // L2
	Peers              []string // BGP
	// Conflicts are addresses other hosts use (L2; filled in by the agent
	// from its responders).
	Conflicts []v1alpha1.AddressConflict
	// Probing are offered addresses this node probes without announcing
	// them (L2, announce.Decision.Prober); Probed are those of them no
	// other host answered for (filled in by the agent).
	Probing, Probed []netip.Addr
}

// Make plans one sync from the facts and the previous sync's state.
func Make(f Facts, prev State) Result {
	in := announceInput(f)
	res := Result{State: prev}
	var bgpCfg *config.BGP
	if f.BGP != nil {
		bgpCfg = config.ParseBGP(f.BGP.Peers, f.BGP.Advertisements, f.BGP.BFDProfiles, in.Pools).KeepLastGood(prev.BGPConfig)
		res.State.BGPConfig = bgpCfg
	}
	msgs, reasons := configProblems(in.L2, bgpCfg)
	res.Events = warnings(f.Node, prev.Warned, msgs, reasons)
	res.State.Warned = msgs
	res.Events = append(res.Events, drainEvents(f, prev.Drain)...)
	res.State.Drain = f.Drain.Phase

	var bgpReports []Report
	if bgpCfg != nil {
		var evs []Event
		res.BGP, bgpReports, evs = planBGP(f, in, bgpCfg, &res.State)
		res.Events = append(res.Events, evs...)
	}
	if f.Members.NewPeer || !f.Members.Settled {
		return res
	}
	l2, l2Reports, evs, problems := planL2(f, in, &res.State)
	res.L2, res.Problems = l2, problems
	res.Events = append(res.Events, evs...)
	res.Reports = append(l2Reports, bgpReports...)
	slices.SortFunc(res.Reports, func(a, b Report) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Service, b.Service), strings.Compare(a.Via, b.Via))
	})
	if res.Reports == nil {
		res.Reports = []Report{}
	}
	return res
}

func newReport(key, via string) Report {
	ns, name, _ := strings.Cut(key, "/")
	return Report{Namespace: ns, Service: name, Via: via}
}
