package l2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/ndp"
	"k8s.io/utils/clock"
)

// DefaultGratuitous is when gratuitous packets go out after an address
// starts being announced: at once, then repeated so that a lost packet or a
// slow switch does not leave clients on the old node.
var DefaultGratuitous = []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, time.Second}

// DefaultDefendInterval is how often, at most, an address is defended
// against another host claiming it (RFC 5227's DEFEND_INTERVAL).
const DefaultDefendInterval = 10 * time.Second

// DefaultSpeakerClaimGrace is how long an announced address claimed by
// another speaker goes undefended: a hand-over between two live nodes
// overlaps by tens of milliseconds (both answer until the old one's plan
// catches up), and a defence then would pull the neighbours back to the
// node that is letting go.
const DefaultSpeakerClaimGrace = time.Second

// maxGratuitous bounds the schedule so a misconfiguration cannot flood.
const maxGratuitous = 16

// Probe defaults. RFC 5227 spaces its three probes 1 to 2 s apart and then
// waits 2 s more, for hosts that configure themselves; a LAN segment
// answers within milliseconds, and a new Service should not wait seconds.
const (
	DefaultProbeCount    = 3
	DefaultProbeInterval = 100 * time.Millisecond
	// DefaultProbeWait is how long after the first probe an address with
	// no answer counts as free.
	DefaultProbeWait = 400 * time.Millisecond
	// DefaultReprobeInterval is how often an address in conflict is probed
	// again, to find out whether the other host has let it go.
	DefaultReprobeInterval = 30 * time.Second
)

// Config configures a Responder.
type Config struct {
	// Link is the interface's sockets. The Responder owns it: Run closes it.
	Link *Link
	// Logger receives takeovers and withdrawals (V(0)), conflicts (V(1)),
	// and each answer (V(2)).
	Logger logr.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Clock is for tests; default the real clock.
	Clock clock.WithTicker
	// Gratuitous lists the offsets, from the moment an address becomes
	// announced, at which gratuitous packets are sent; ascending, at most
	// 16. Nil means DefaultGratuitous; empty (non-nil) sends none.
	Gratuitous []time.Duration
	// DefendInterval is the minimum time between two defences of one
	// address: when another host claims an announced address (a gratuitous
	// ARP or advertisement with another MAC), the responder sends a new
	// gratuitous burst so that the last word is the announcer's. Default
	// DefaultDefendInterval.
	DefendInterval time.Duration
	// SpeakerClaimGrace delays the defence against another speaker's claim
	// (frames with the speakers' mark): if this node still announces the
	// address when it is over, the disagreement is real and is defended as
	// above; if it stopped meanwhile, it was a hand-over. Claims of hosts
	// outside the cluster are defended at once. Default
	// DefaultSpeakerClaimGrace.
	SpeakerClaimGrace time.Duration
	// ProbeCount probes (ARP Probes, RFC 5227; Duplicate Address Detection
	// solicitations, RFC 4862) go out ProbeInterval apart for an address
	// that Announce asks to probe; it is answered for only if no other
	// host claims it within ProbeWait of the first. Defaults
	// DefaultProbeCount, DefaultProbeInterval, DefaultProbeWait.
	ProbeCount    int
	ProbeInterval time.Duration
	ProbeWait     time.Duration
	// ReprobeInterval is how often an address in conflict is probed again;
	// once nobody answers, the conflict is over. Default
	// DefaultReprobeInterval.
	ReprobeInterval time.Duration
	// OnChange, if set, is called (from Run's goroutine) whenever the set
	// returned by Conflicts changes, and whenever a probe ends and changes
	// the set returned by Announced or Checked, so that the caller learns
	// when an address it asked for is answered for or checked.
	OnChange func()
}

// Conflict is an address that another host, not a Beacon speaker, uses.
type Conflict struct {
	IP netip.Addr
	// MAC is the other host's hardware address.
	MAC net.HardwareAddr
	// Interface is where it was seen.
	Interface string
	// Announced is true when the conflict arose while this node answered
	// for the address (the other host claimed it later), which it keeps
	// doing; false when a probe found the address taken, so this node
	// does not answer for it.
	Announced bool
}

// Responder answers ARP requests and Neighbor Solicitations on one
// interface for the addresses it is told to announce, with the interface's
// MAC, and sends gratuitous announcements when it takes an address over.
// It ignores requests for any other address.
type Responder struct {
	cfg   Config
	link  *Link
	log   logr.Logger
	clock clock.WithTicker

	// announced is the set answered for: wanted minus the addresses being
	// probed for the first time and those a probe found taken.
	announced atomic.Pointer[addrSet]
	wanted    atomic.Pointer[addrSet]
	// checks are probed, never answered for (see Check).
	checks     atomic.Pointer[addrSet]
	changed    chan struct{}
	reannounce chan struct{}
	claims     chan claim
	running    atomic.Bool

	// mu guards the checks: addresses being probed and addresses in
	// conflict. Announce starts probes; Run's loop sends them and decides.
	mu        sync.Mutex
	probes    map[netip.Addr]*probe
	conflicts map[netip.Addr]*conflictState
	// snapshot is what Conflicts returns.
	snapshot atomic.Pointer[[]Conflict]
}

// claim is another host's packet claiming a wanted address.
type claim struct {
	ip      netip.Addr
	mac     net.HardwareAddr
	speaker bool
}

// probe is a check of one address in progress.
type probe struct {
	start time.Time
	sent  int
	// silent: the address is not answered for while it is checked (a
	// first probe, or a conflict found by one).
	silent bool
}

type conflictState struct {
	Conflict
	reprobeAt time.Time
}

type addrSet map[netip.Addr]struct{}

// New validates the configuration. It starts nothing and opens nothing.
func New(cfg Config) (*Responder, error) {
	l := cfg.Link
	switch {
	case l == nil:
		return nil, errors.New("l2: Config.Link is required")
	case len(l.MAC) != 6:
		return nil, fmt.Errorf("l2: %s: MAC %v is not an Ethernet address", l.Name, l.MAC)
	case l.ARP == nil && l.NDP == nil:
		return nil, fmt.Errorf("l2: %s: neither ARP nor NDP socket", l.Name)
	case l.NDP != nil && l.Groups == nil:
		return nil, fmt.Errorf("l2: %s: NDP needs Groups", l.Name)
	}
	if cfg.Gratuitous == nil {
		cfg.Gratuitous = DefaultGratuitous
	}
	if len(cfg.Gratuitous) > maxGratuitous || !slices.IsSorted(cfg.Gratuitous) || (len(cfg.Gratuitous) > 0 && cfg.Gratuitous[0] < 0) {
		return nil, fmt.Errorf("l2: Gratuitous must be at most %d ascending non-negative offsets, got %v", maxGratuitous, cfg.Gratuitous)
	}
	if cfg.DefendInterval <= 0 {
		cfg.DefendInterval = DefaultDefendInterval
	}
	if cfg.SpeakerClaimGrace <= 0 {
		cfg.SpeakerClaimGrace = DefaultSpeakerClaimGrace
	}
	if cfg.ProbeCount <= 0 {
		cfg.ProbeCount = DefaultProbeCount
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.ProbeWait <= 0 {
		cfg.ProbeWait = DefaultProbeWait
	}
	if cfg.ReprobeInterval <= 0 {
		cfg.ReprobeInterval = DefaultReprobeInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	r := &Responder{
		cfg:        cfg,
		link:       l,
		log:        cfg.Logger.WithValues("interface", l.Name),
		clock:      cfg.Clock,
		changed:    make(chan struct{}, 1),
		reannounce: make(chan struct{}, 1),
		claims:     make(chan claim, 64),
		probes:     map[netip.Addr]*probe{},
		conflicts:  map[netip.Addr]*conflictState{},
	}
	r.announced.Store(&addrSet{})
	r.wanted.Store(&addrSet{})
	r.checks.Store(&addrSet{})
	r.snapshot.Store(&[]Conflict{})
	return r, nil
}

// SetAnnounced replaces the set of addresses this node announces on the
// interface, probing none of them: Announce(ips, nil).
func (r *Responder) SetAnnounced(ips []netip.Addr) { r.Announce(ips, nil) }

// Announce replaces the set of addresses this node announces on the
// interface. It may be called at any time, before or during Run, from any
// goroutine; requests are answered from the new set at once, and addresses
// new to the set get a gratuitous burst. Addresses of a family the link does
// not serve are ignored.
//
// Addresses new to the set that are also in probeFirst are first probed for
// (see Config.ProbeCount): they are answered for only once no other host
// claimed them, and Conflicts lists them otherwise. The speaker probes an
// address when it is announced for the first time, not when it moves
// between nodes, where the delay would lengthen the failover.
func (r *Responder) Announce(ips, probeFirst []netip.Addr) {
	set := r.servable(ips)
	r.mu.Lock()
	old := *r.wanted.Load()
	now := r.clock.Now()
	for _, ip := range probeFirst {
		ip = ip.Unmap().WithZone("")
		if _, isNew := old[ip]; !isNew {
			if _, want := set[ip]; want {
				r.probes[ip] = &probe{start: now, silent: true}
			}
		}
	}
	r.wanted.Store(&set)
	r.forgetLocked(old)
	r.publishLocked()
	r.mu.Unlock()
	r.wake()
}

// forgetLocked drops the probes and conflicts of the addresses of old that
// the node neither announces nor checks any more.
func (r *Responder) forgetLocked(old addrSet) {
	wanted, checks := *r.wanted.Load(), *r.checks.Load()
	for ip := range old {
		_, want := wanted[ip]
		if _, check := checks[ip]; !want && !check {
			delete(r.probes, ip)
			delete(r.conflicts, ip)
		}
	}
}

// wake tells Run's loop that the sets changed.
func (r *Responder) wake() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// servable returns the addresses of ips the link serves, normalised.
func (r *Responder) servable(ips []netip.Addr) addrSet {
	set := make(addrSet, len(ips))
	for _, ip := range ips {
		ip = ip.Unmap().WithZone("")
		switch {
		case !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast():
			continue
		case ip.Is4() && r.link.ARP != nil, ip.Is6() && r.link.NDP != nil:
			set[ip] = struct{}{}
		}
	}
	return set
}

// Check replaces the set of addresses this node probes on the interface
// without announcing them: each address new to the set (and not
// announced) is probed once, as Announce probes, and never answered for.
// Checked lists those no other host claimed; Conflicts lists the others,
// not announced, and probes them again every ReprobeInterval while they
// stay in the set. The speaker checks an address that the controller
// offers a Service and no node announces yet, so that the controller
// learns whether another host uses it.
func (r *Responder) Check(ips []netip.Addr) {
	set := r.servable(ips)
	r.mu.Lock()
	old, wanted := *r.checks.Load(), *r.wanted.Load()
	now := r.clock.Now()
	for ip := range set {
		_, was := old[ip]
		_, announced := wanted[ip]
		if !was && !announced {
			r.probes[ip] = &probe{start: now, silent: true}
		}
	}
	r.checks.Store(&set)
	r.forgetLocked(old)
	r.publishLocked()
	r.mu.Unlock()
	r.wake()
}

// Checked returns the addresses of the Check set whose probe has passed
// and that no other host uses, sorted.
func (r *Responder) Checked() []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.Addr
	for ip := range *r.checks.Load() {
		if r.probes[ip] == nil && r.conflicts[ip] == nil {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// publishLocked recomputes the answered set and the conflict snapshot and
// reports whether the conflicts changed.
func (r *Responder) publishLocked() bool {
	set := *r.wanted.Load()
	answer := make(addrSet, len(set))
	v4, v6 := 0, 0
	for ip := range set {
		if p := r.probes[ip]; p != nil && p.silent {
			continue
		}
		if c := r.conflicts[ip]; c != nil && !c.Announced {
			continue
		}
		answer[ip] = struct{}{}
		if ip.Is4() {
			v4++
		} else {
			v6++
		}
	}
	r.announced.Store(&answer)
	r.cfg.Metrics.setAnnounced(r.link.Name, v4, v6)
	list := make([]Conflict, 0, len(r.conflicts))
	c4, c6 := 0, 0
	for _, c := range r.conflicts {
		list = append(list, c.Conflict)
		if c.IP.Is4() {
			c4++
		} else {
			c6++
		}
	}
	slices.SortFunc(list, func(a, b Conflict) int { return a.IP.Compare(b.IP) })
	r.cfg.Metrics.setConflicting(r.link.Name, c4, c6)
	prev := *r.snapshot.Load()
	r.snapshot.Store(&list)
	return !slices.EqualFunc(prev, list, func(a, b Conflict) bool {
		return a.IP == b.IP && bytes.Equal(a.MAC, b.MAC) && a.Announced == b.Announced
	})
}

// Conflicts returns the addresses of the set that another host uses,
// sorted: found by a probe (not answered for) or claimed by another host
// while this node answered (still answered for, and defended).
func (r *Responder) Conflicts() []Conflict { return slices.Clone(*r.snapshot.Load()) }

// Reannounce sends a new gratuitous burst for every announced address. The
// speaker calls it when peers it saw dead come back (a healed partition), so
// that neighbours that followed another node's announcements return at once
// instead of when their cache entries expire.
func (r *Responder) Reannounce() {
	select {
	case r.reannounce <- struct{}{}:
	default:
	}
}

// Announced returns the addresses currently answered for, sorted.
func (r *Responder) Announced() []netip.Addr {
	set := *r.announced.Load()
	out := make([]netip.Addr, 0, len(set))
	for ip := range set {
		out = append(out, ip)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// Run answers requests and sends announcements until ctx is done, then
// closes the link and returns nil. A Responder runs once.
func (r *Responder) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("l2: responder already ran")
	}
	var wg sync.WaitGroup
	defer r.cfg.Metrics.forget(r.link.Name)
	defer wg.Wait()
	defer func() {
		if err := r.link.Close(); err != nil {
			r.log.Error(err, "close")
		}
	}()
	if r.link.ARP != nil {
		wg.Go(func() { r.read(ctx, r.link.ARP, "ipv4") })
	}
	if r.link.NDP != nil {
		wg.Go(func() { r.read(ctx, r.link.NDP, "ipv6") })
	}
	r.log.Info("responder started", "mac", r.link.MAC.String(), "arp", r.link.ARP != nil, "ndp", r.link.NDP != nil)
	a := &announcer{r: r, bursts: map[netip.Addr]*burst{}, current: addrSet{}, joined: map[netip.Addr]bool{},
		defended: map[netip.Addr]time.Time{}, contested: map[netip.Addr]time.Time{}}
	a.sync()
	// The timer exists only while there is timed work, so that a fake
	// clock's waiters say exactly that.
	var timer clock.Timer
	var timerC <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		a.fire()
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
		if at, ok := a.nextWake(); ok {
			timer = r.clock.NewTimer(max(at.Sub(r.clock.Now()), 0))
			timerC = timer.C()
		}
		select {
		case <-ctx.Done():
			r.log.Info("responder stopped")
			return nil
		case <-r.changed:
			a.sync()
		case c := <-r.claims:
			a.claimed(c)
		case <-r.reannounce:
			a.sync()
			a.restart()
		case <-timerC:
			timer, timerC = nil, nil
			if a.retryAt != (time.Time{}) && !r.clock.Now().Before(a.retryAt) {
				a.syncGroups()
			}
		}
		a.check()
	}
}

// read answers requests arriving on conn until it is closed.
func (r *Responder) read(ctx context.Context, conn Conn, family string) {
	buf := make([]byte, 9216) // jumbo frames
	backoff := 10 * time.Millisecond
	for {
		n, err := conn.ReadFrame(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// A packet socket reports ENETDOWN once when its link goes
			// down, and works again when it comes back: keep reading, but
			// do not spin on a persistent error.
			r.cfg.Metrics.inc(cError, r.link.Name, family)
			r.log.Error(err, "read failed", "family", family, "retryIn", backoff)
			select {
			case <-ctx.Done():
				return
			case <-r.clock.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		r.handle(buf[:n], family)
	}
}

// handle processes one received frame.
func (r *Responder) handle(frame []byte, family string) {
	m := r.cfg.Metrics
	p, err := parse(frame, family)
	if err != nil {
		if !errors.Is(err, errIgnore) {
			m.inc(cError, r.link.Name, family)
			r.log.V(3).Info("malformed packet", "family", family, "err", err)
		}
		return
	}
	_, ours := (*r.announced.Load())[p.target]
	switch p.kind {
	case kindRequest:
		m.inc(cRequest, r.link.Name, family)
		if !ours {
			return
		}
		reply, err := replyFrame(r.link.MAC, p, family)
		if err == nil {
			err = r.write(family, reply)
		}
		if err != nil {
			m.inc(cError, r.link.Name, family)
			r.log.Error(err, "cannot answer", "ip", p.target, "to", p.senderIP)
			return
		}
		m.inc(cReply, r.link.Name, family)
		r.log.V(2).Info("answered", "ip", p.target, "to", p.senderIP, "toMAC", p.senderMAC.String())
	case kindClaim:
		_, wanted := (*r.wanted.Load())[p.target]
		_, checked := (*r.checks.Load())[p.target]
		if (!wanted && !checked) || bytes.Equal(p.claimMAC, r.link.MAC) {
			return
		}
		r.log.V(1).Info("another host claims an address of this node", "ip", p.target, "mac", p.claimMAC.String(), "speaker", p.speaker)
		select {
		case r.claims <- claim{ip: p.target, mac: bytes.Clone(p.claimMAC), speaker: p.speaker}:
		default: // the loop is behind; the next claim will do
		}
		m.inc(cConflict, r.link.Name, family)
	}
}

func parse(frame []byte, family string) (frameInfo, error) {
	if family == "ipv6" {
		return parseNDP(frame)
	}
	return parseARP(frame)
}

func replyFrame(mac net.HardwareAddr, p frameInfo, family string) ([]byte, error) {
	if family == "ipv6" {
		return naReplyFrame(mac, p)
	}
	return arpReplyFrame(mac, p)
}

func (r *Responder) write(family string, frame []byte) error {
	if family == "ipv6" {
		return r.link.NDP.WriteFrame(frame)
	}
	return r.link.ARP.WriteFrame(frame)
}

// gratuitousFrames returns one round of unsolicited announcements for ip
// and the family they are sent on.
func gratuitousFrames(mac net.HardwareAddr, ip netip.Addr) (string, [][]byte, error) {
	if ip.Is4() {
		frames, err := gratuitousARP(mac, ip)
		return "ipv4", frames, err
	}
	na, err := unsolicitedNA(mac, ip)
	return "ipv6", [][]byte{na}, err
}

// gratuitous sends one round of unsolicited announcements for ip.
func (r *Responder) gratuitous(ip netip.Addr) {
	family, frames, err := gratuitousFrames(r.link.MAC, ip)
	if err != nil {
		r.log.Error(err, "cannot build gratuitous announcement", "ip", ip)
		return
	}
	m := r.cfg.Metrics
	for _, f := range frames {
		if err := r.write(family, f); err != nil {
			m.inc(cError, r.link.Name, family)
			r.log.Error(err, "cannot send gratuitous announcement", "ip", ip)
			continue
		}
		m.inc(cGratuitous, r.link.Name, family)
	}
}

// announcer is the state of Run's loop: pending gratuitous bursts and
// multicast memberships. Only Run's goroutine touches it.
type announcer struct {
	r        *Responder
	bursts   map[netip.Addr]*burst
	current  addrSet
	joined   map[netip.Addr]bool // solicited-node groups
	retryAt  time.Time           // when to retry failed joins; zero if none
	defended map[netip.Addr]time.Time
	// contested holds, per address another speaker claimed, when its
	// grace ends.
	contested map[netip.Addr]time.Time
}

type burst struct {
	start time.Time
	next  int // index into Config.Gratuitous of the next round
}

// sync catches up with SetAnnounced: bursts for new addresses, none for
// removed ones, memberships to match.
func (a *announcer) sync() {
	now := a.r.clock.Now()
	next := *a.r.announced.Load()
	for ip := range next {
		if _, ok := a.current[ip]; !ok {
			a.r.log.Info("announcing", "ip", ip)
			if len(a.r.cfg.Gratuitous) > 0 {
				a.bursts[ip] = &burst{start: now}
			}
		}
	}
	for ip := range a.current {
		if _, ok := next[ip]; !ok {
			a.r.log.Info("withdrawn", "ip", ip)
			delete(a.bursts, ip)
			delete(a.defended, ip)
			delete(a.contested, ip)
		}
	}
	a.current = next
	a.syncGroups()
}

// syncGroups joins the solicited-node group of every announced IPv6
// address and leaves the others. Several addresses may share a group.
func (a *announcer) syncGroups() {
	if a.r.link.Groups == nil {
		return
	}
	want := map[netip.Addr]bool{}
	for ip := range a.current {
		if ip.Is6() {
			g, err := ndp.SolicitedNodeMulticast(ip)
			if err == nil {
				want[g] = true
			}
		}
	}
	a.retryAt = time.Time{}
	for g := range want {
		if a.joined[g] {
			continue
		}
		if err := a.r.link.Groups.Join(g); err != nil {
			a.r.log.Error(err, "cannot join solicited-node group; retrying", "group", g)
			a.retryAt = a.r.clock.Now().Add(time.Second)
			continue
		}
		a.joined[g] = true
	}
	for g := range a.joined {
		if want[g] {
			continue
		}
		if err := a.r.link.Groups.Leave(g); err != nil {
			a.r.log.Error(err, "cannot leave solicited-node group", "group", g)
		}
		delete(a.joined, g)
	}
}

// restart begins a new burst for every announced address.
func (a *announcer) restart() {
	if len(a.r.cfg.Gratuitous) == 0 {
		return
	}
	now := a.r.clock.Now()
	for ip := range a.current {
		a.bursts[ip] = &burst{start: now}
	}
}

// defend answers another host's claim on an announced address with a new
// burst, at most once per DefendInterval per address.
func (a *announcer) defend(ip netip.Addr) {
	if _, ok := a.current[ip]; !ok || len(a.r.cfg.Gratuitous) == 0 {
		return
	}
	now := a.r.clock.Now()
	if last, ok := a.defended[ip]; ok && now.Sub(last) < a.r.cfg.DefendInterval {
		return
	}
	a.defended[ip] = now
	a.r.log.Info("defending address claimed by another host", "ip", ip)
	a.bursts[ip] = &burst{start: now}
}

// contest starts the grace of another speaker's claim on an announced
// address; a claim during a grace does not extend it.
func (a *announcer) contest(ip netip.Addr) {
	if _, ok := a.contested[ip]; ok {
		return
	}
	a.r.log.V(1).Info("another speaker claims an announced address; defending if still announced after the grace", "ip", ip, "grace", a.r.cfg.SpeakerClaimGrace)
	a.contested[ip] = a.r.clock.Now().Add(a.r.cfg.SpeakerClaimGrace)
}

// fire defends the contested addresses whose grace is over and sends the
// rounds that are due. A round missed entirely (the process stalled) is
// not replayed: one round covers all that are due.
func (a *announcer) fire() {
	now := a.r.clock.Now()
	for ip, end := range a.contested {
		if !now.Before(end) {
			delete(a.contested, ip)
			a.defend(ip)
		}
	}
	sched := a.r.cfg.Gratuitous
	for ip, b := range a.bursts {
		due := b.next
		for due < len(sched) && !now.Before(b.start.Add(sched[due])) {
			due++
		}
		if due > b.next {
			a.r.gratuitous(ip)
			b.next = due
		}
		if b.next == len(sched) {
			delete(a.bursts, ip)
		}
	}
}

// nextWake is when the loop has timed work: the next round of a burst, the
// end of a speaker claim's grace, or a membership retry.
func (a *announcer) nextWake() (at time.Time, ok bool) {
	if a.retryAt != (time.Time{}) {
		at, ok = a.retryAt, true
	}
	for _, b := range a.bursts {
		if t := b.start.Add(a.r.cfg.Gratuitous[b.next]); !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	for _, t := range a.contested {
		if !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	if t, has := a.r.nextCheck(); has && (!ok || t.Before(at)) {
		at, ok = t, true
	}
	return at, ok
}

// claimed handles another host's claim on a wanted address. A speaker's
// claim is an election disagreement, never a conflict: during a probe it
// means another node still answers (and is about to stop); while this node
// answers, it is defended only if it outlasts SpeakerClaimGrace. Another host's answer to a probe
// is a conflict: a first probe's address is not announced. Another host's
// claim on an announced address starts a probe to confirm it (a host that
// really uses the address answers; a speaker of an older version, which
// does not mark its frames and stops once it sees the election, does
// not); the address stays announced and defended meanwhile and after.
func (a *announcer) claimed(c claim) {
	r := a.r
	r.mu.Lock()
	changed := false
	p := r.probes[c.ip]
	cur := r.conflicts[c.ip]
	_, answered := (*r.announced.Load())[c.ip]
	_, wanted := (*r.wanted.Load())[c.ip]
	if _, checked := (*r.checks.Load())[c.ip]; checked {
		wanted = true
	}
	switch {
	case !wanted || c.speaker:
	case p != nil || cur != nil:
		announced := answered && (p == nil || !p.silent)
		if cur == nil {
			r.log.Info("address in use by another host", "ip", c.ip, "mac", c.mac.String(), "announcing", announced)
		}
		delete(r.probes, c.ip)
		r.conflicts[c.ip] = &conflictState{
			Conflict:  Conflict{IP: c.ip, MAC: c.mac, Interface: r.link.Name, Announced: announced},
			reprobeAt: r.clock.Now().Add(r.cfg.ReprobeInterval),
		}
		changed = r.publishLocked()
	case answered:
		r.log.Info("another host claims an announced address; probing to confirm", "ip", c.ip, "mac", c.mac.String())
		r.probes[c.ip] = &probe{start: r.clock.Now()}
	}
	r.mu.Unlock()
	if changed && r.cfg.OnChange != nil {
		r.cfg.OnChange()
	}
	a.sync()
	switch {
	case !answered:
	case c.speaker:
		a.contest(c.ip)
	default:
		a.defend(c.ip)
	}
}

// check sends the probes that are due, settles those whose wait is over
// without an answer (a first probe: the address is answered for from now
// on; a re-probe: the conflict is over) and starts the re-probes of
// conflicts that are due.
func (a *announcer) check() {
	r := a.r
	now := r.clock.Now()
	var out []netip.Addr
	r.mu.Lock()
	for ip, c := range r.conflicts {
		if _, busy := r.probes[ip]; !busy && !now.Before(c.reprobeAt) {
			r.probes[ip] = &probe{start: now, silent: !c.Announced}
			c.reprobeAt = now.Add(r.cfg.ReprobeInterval)
		}
	}
	settled, checkSettled := false, false
	for ip, p := range r.probes {
		for p.sent < r.cfg.ProbeCount && !now.Before(p.start.Add(time.Duration(p.sent)*r.cfg.ProbeInterval)) {
			out = append(out, ip)
			p.sent++
		}
		if p.sent == r.cfg.ProbeCount && !now.Before(p.start.Add(r.cfg.ProbeWait)) {
			delete(r.probes, ip)
			if _, checked := (*r.checks.Load())[ip]; checked {
				checkSettled = true
			}
			if _, was := r.conflicts[ip]; was {
				r.log.Info("address no longer in use by another host", "ip", ip)
				delete(r.conflicts, ip)
			}
			settled = true
		}
	}
	var changed bool
	if settled {
		before := len(*r.announced.Load())
		changed = r.publishLocked() || len(*r.announced.Load()) != before || checkSettled
	}
	r.mu.Unlock()
	for _, ip := range out {
		r.sendProbe(ip)
	}
	if settled {
		a.sync()
	}
	if changed && r.cfg.OnChange != nil {
		r.cfg.OnChange()
	}
}

// nextCheck is when check has work next.
func (r *Responder) nextCheck() (at time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	consider := func(t time.Time) {
		if !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	for _, p := range r.probes {
		if p.sent < r.cfg.ProbeCount {
			consider(p.start.Add(time.Duration(p.sent) * r.cfg.ProbeInterval))
		} else {
			consider(p.start.Add(r.cfg.ProbeWait))
		}
	}
	for ip, c := range r.conflicts {
		if _, busy := r.probes[ip]; !busy {
			consider(c.reprobeAt)
		}
	}
	return at, ok
}

// sendProbe sends one ARP Probe or Duplicate Address Detection probe.
func (r *Responder) sendProbe(ip netip.Addr) {
	family, f, err := "ipv4", []byte(nil), error(nil)
	if ip.Is4() {
		f, err = arpProbeFrame(r.link.MAC, ip)
	} else {
		family = "ipv6"
		f, err = dadFrame(r.link.MAC, ip)
	}
	if err == nil {
		err = r.write(family, f)
	}
	if err != nil {
		r.cfg.Metrics.inc(cError, r.link.Name, family)
		r.log.Error(err, "cannot send probe", "ip", ip)
		return
	}
	r.cfg.Metrics.inc(cProbe, r.link.Name, family)
}
