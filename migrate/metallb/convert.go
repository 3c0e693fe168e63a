package metallb

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// DefaultSpeakerNamespace is where the chart installs beacon-speaker.
const DefaultSpeakerNamespace = "beacon-system"

// Options tune a conversion.
type Options struct {
	// SpeakerNamespace is the namespace of beacon-speaker, the only one it
	// reads BGP password Secrets from; default DefaultSpeakerNamespace.
	SpeakerNamespace string
}

// Result is what Convert made of its input.
type Result struct {
	Pools             []v1alpha1.IPPool
	L2Advertisements  []v1alpha1.L2Advertisement
	BFDProfiles       []v1alpha1.BFDProfile
	BGPPeers          []v1alpha1.BGPPeer
	BGPAdvertisements []v1alpha1.BGPAdvertisement
	// Secrets hold the plain-text BGP passwords of MetalLB peers.
	Secrets []corev1.Secret
	// Services are partial: name, namespace and Beacon annotations only.
	Services []corev1.Service
	Findings []Finding
}

// Objects returns every object made, each kind sorted by name, kinds in an
// order that creates what is referred to before what refers to it.
func (r *Result) Objects() []runtime.Object {
	var out []runtime.Object
	for i := range r.Pools {
		out = append(out, &r.Pools[i])
	}
	for i := range r.L2Advertisements {
		out = append(out, &r.L2Advertisements[i])
	}
	for i := range r.BFDProfiles {
		out = append(out, &r.BFDProfiles[i])
	}
	for i := range r.Secrets {
		out = append(out, &r.Secrets[i])
	}
	for i := range r.BGPPeers {
		out = append(out, &r.BGPPeers[i])
	}
	for i := range r.BGPAdvertisements {
		out = append(out, &r.BGPAdvertisements[i])
	}
	for i := range r.Services {
		out = append(out, &r.Services[i])
	}
	return out
}

// converter holds one conversion's state.
type converter struct {
	opts Options
	res  Result
	// aliases maps Community names (CRD and legacy bgp-communities) to
	// their values.
	aliases map[string]string
	// seen detects two sources for one output object ("IPPool/lan").
	seen map[string]Ref
}

// Convert converts MetalLB objects (metallb.io kinds, ConfigMaps holding the
// legacy configuration, Services) into Beacon objects. It never fails:
// whatever it cannot convert, including objects it does not recognise, is
// in the result's Findings.
func Convert(objs []*unstructured.Unstructured, opts Options) *Result {
	if opts.SpeakerNamespace == "" {
		opts.SpeakerNamespace = DefaultSpeakerNamespace
	}
	c := &converter{opts: opts, aliases: map[string]string{}, seen: map[string]Ref{}}

	// Aliases first: advertisements anywhere in the input may use them.
	var legacy []legacySource
	for _, u := range objs {
		ref := refOf(u)
		switch {
		case isMetalLB(u) && u.GetKind() == "Community":
			var spec CommunitySpec
			if c.decode(u, &spec) {
				c.addAliases(ref, spec)
			}
		case u.GetAPIVersion() == "v1" && u.GetKind() == "ConfigMap":
			if cfg, ok := c.legacyConfig(u); ok {
				legacy = append(legacy, legacySource{ref: ref, cfg: cfg})
				for _, name := range slices.Sorted(maps.Keys(cfg.BGPCommunities)) {
					c.addAlias(ref, "bgp-communities."+name, name, cfg.BGPCommunities[name])
				}
			}
		}
	}

	for _, u := range objs {
		ref := refOf(u)
		r := reporter{obj: ref, prefix: "spec.", out: &c.res.Findings}
		if !isMetalLB(u) {
			switch {
			case u.GetAPIVersion() == "v1" && u.GetKind() == "Service":
				c.service(u)
			case u.GetAPIVersion() == "v1" && u.GetKind() == "ConfigMap":
				// converted below, or reported by legacyConfig
			default:
				r.prefix = ""
				r.add("", "not a MetalLB object (apiVersion %q); skipped", u.GetAPIVersion())
			}
			continue
		}
		switch u.GetKind() {
		case "IPAddressPool":
			convertSpec(c, u, r, (*converter).pool)
		case "AddressPool":
			convertSpec(c, u, r, (*converter).addressPool)
		case "L2Advertisement":
			convertSpec(c, u, r, (*converter).l2Advertisement)
		case "BGPAdvertisement":
			convertSpec(c, u, r, (*converter).bgpAdvertisement)
		case "BGPPeer":
			convertSpec(c, u, r, (*converter).peer)
		case "BFDProfile":
			convertSpec(c, u, r, (*converter).bfdProfile)
		case "Community":
			// Its aliases are written into the advertisements that use them.
		case "ServiceL2Status", "ServiceBGPStatus", "BGPSessionState", "ConfigurationState":
			// Reports written by MetalLB; Beacon writes its own.
		default:
			r.prefix = ""
			r.add("", "kind %s has no Beacon equivalent; skipped", u.GetKind())
		}
	}
	for _, l := range legacy {
		c.legacy(l)
	}
	c.sortResult()
	return &c.res
}

func isMetalLB(u *unstructured.Unstructured) bool {
	return u.GroupVersionKind().Group == Group
}

func refOf(u *unstructured.Unstructured) Ref {
	return Ref{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

// decode reads u's spec into spec, reporting fields spec does not have and
// a spec of the wrong shape (the object is then skipped).
// convertSpec decodes the spec of u into a T and, if it could be read,
// converts it with convert.
func convertSpec[T any](c *converter, u *unstructured.Unstructured, r reporter, convert func(*converter, string, map[string]string, *T, reporter)) {
	var spec T
	if c.decode(u, &spec) {
		convert(c, u.GetName(), u.GetLabels(), &spec, r)
	}
}

func (c *converter) decode(u *unstructured.Unstructured, spec any) bool {
	r := reporter{obj: refOf(u), out: &c.res.Findings}
	raw, ok := u.Object["spec"]
	if !ok {
		return true
	}
	return c.decodeValue(raw, spec, r, "spec")
}

func (c *converter) decodeValue(raw any, into any, r reporter, path string) bool {
	b, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(b, into)
	}
	if err != nil {
		r.add(path, "cannot be read (%v); object skipped", err)
		return false
	}
	for _, f := range unknownFields(raw, reflect.TypeOf(into).Elem(), path) {
		r.add(f, "unknown field, not converted")
	}
	return true
}

// unknownFields lists the keys of raw (decoded JSON) that t, a struct with
// json tags, has no field for, descending into nested structs and lists.
func unknownFields(raw any, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice:
		var out []string
		if list, ok := raw.([]any); ok {
			for i, e := range list {
				out = append(out, unknownFields(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
		return out
	case reflect.Struct:
	default:
		return nil
	}
	m, ok := raw.(map[string]any)
	if !ok || t.PkgPath() != reflect.TypeOf(Finding{}).PkgPath() {
		return nil // not an object, or a Kubernetes type (selectors, durations)
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		fields[name] = t.Field(i).Type
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ft, ok := fields[k]
		if !ok {
			out = append(out, join(path, k))
			continue
		}
		out = append(out, unknownFields(m[k], ft, join(path, k))...)
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// claim reserves an output name, reporting a second source for it.
func (c *converter) claim(kind, name string, r reporter) bool {
	key := kind + "/" + name
	if first, ok := c.seen[key]; ok {
		r.add("", "%s %q is already made from %s; skipped", kind, name, first)
		return false
	}
	c.seen[key] = r.obj
	return true
}

func meta(name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Labels: labels}
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: kind}
}

// pool converts an IPAddressPool.
func (c *converter) pool(name string, labels map[string]string, s *IPAddressPoolSpec, r reporter) {
	if !c.claim("IPPool", name, r) {
		return
	}
	p := v1alpha1.IPPool{TypeMeta: typeMeta("IPPool"), ObjectMeta: meta(name, labels)}
	p.Spec.AutoAssign = s.AutoAssign
	p.Spec.AvoidBuggyIPs = s.AvoidBuggyIPs
	for i, a := range s.Addresses {
		if b, ok := addressBlock(a, fmt.Sprintf("addresses[%d]", i), r); ok {
			p.Spec.Addresses = append(p.Spec.Addresses, b)
		}
	}
	if len(p.Spec.Addresses) == 0 {
		r.add("addresses", "no usable address; pool not converted")
		return
	}
	if sa := s.ServiceAllocation; sa != nil {
		out := &v1alpha1.ServiceAllocation{Namespaces: slices.Clone(sa.Namespaces)}
		if sa.Priority < 0 {
			r.add("serviceAllocation.priority", "%d is negative; not converted", sa.Priority)
		} else {
			out.Priority = int32(min(sa.Priority, 1<<31-1))
		}
		var exact bool
		if out.NamespaceSelector, exact = oneSelector(sa.NamespaceSelectors); !exact {
			r.add("serviceAllocation.namespaceSelectors", "Beacon takes one selector and these do not merge into one; kept only the first, so Services in namespaces matching only the others no longer get addresses from this pool")
		}
		if out.ServiceSelector, exact = oneSelector(sa.ServiceSelectors); !exact {
			r.add("serviceAllocation.serviceSelectors", "Beacon takes one selector and these do not merge into one; kept only the first, so Services matching only the others no longer get addresses from this pool")
		}
		if !reflect.DeepEqual(*out, v1alpha1.ServiceAllocation{}) {
			p.Spec.ServiceAllocation = out
		}
	}
	c.res.Pools = append(c.res.Pools, p)
}

// addressPool converts the deprecated AddressPool kind.
func (c *converter) addressPool(name string, labels map[string]string, s *AddressPoolSpec, r reporter) {
	var ads []BGPAdvertisementSpec
	for _, a := range s.BGPAdvertisements {
		ads = append(ads, BGPAdvertisementSpec{AggregationLength: a.AggregationLength, AggregationLengthV6: a.AggregationLengthV6, LocalPref: a.LocalPref, Communities: a.Communities})
	}
	c.protocolPool(name, labels, s.Protocol, &IPAddressPoolSpec{Addresses: s.Addresses, AutoAssign: s.AutoAssign, AvoidBuggyIPs: s.AvoidBuggyIPs}, ads, r,
		func(j int) reporter {
			return reporter{obj: r.obj, prefix: fmt.Sprintf("spec.bgpAdvertisements[%d].", j), out: r.out}
		})
}

// addressBlock checks one pool address with Beacon's own parser. A CIDR
// with host bits set (which MetalLB masks) is written as its network.
func addressBlock(a, field string, r reporter) (v1alpha1.AddressBlock, bool) {
	a = strings.TrimSpace(a)
	if _, err := config.ParseBlock(a); err == nil {
		return v1alpha1.AddressBlock(a), true
	}
	if p, err := netip.ParsePrefix(a); err == nil && p.Masked() != p {
		if _, err := config.ParseBlock(p.Masked().String()); err == nil {
			r.add(field, "CIDR %s has host bits set; written as %s (the same addresses)", a, p.Masked())
			return v1alpha1.AddressBlock(p.Masked().String()), true
		}
	}
	_, err := config.ParseBlock(a)
	r.add(field, "%v; address not converted", err)
	return "", false
}

// nonEmpty is s unless it matches everything, which Beacon writes as no
// selector.
func nonEmpty(s *metav1.LabelSelector) *metav1.LabelSelector {
	if s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0) {
		return nil
	}
	return s
}

// selectorPair is the pool and node selector of one part of an
// advertisement.
type selectorPair struct{ pools, nodes *metav1.LabelSelector }

// selectorPairs splits an advertisement by its pool and node selectors, so
// that each part has single selectors and the parts together select what
// the original did.
func selectorPairs(pools, nodes []metav1.LabelSelector) []selectorPair {
	var out []selectorPair
	for _, ps := range splitSelectors(pools) {
		for _, ns := range splitSelectors(nodes) {
			out = append(out, selectorPair{pools: ps, nodes: nonEmpty(ns)})
		}
	}
	return out
}

// partName names part i of n of a split advertisement.
func partName(name string, i, n int) string {
	if n == 1 {
		return name
	}
	return fmt.Sprintf("%s-%d", name, i+1)
}

// poolSelector is an advertisement's pool selector: "every pool" is written
// as no selector only when no pool is named either.
func poolSelector(s *metav1.LabelSelector, named []string) *metav1.LabelSelector {
	if len(named) == 0 {
		return nonEmpty(s)
	}
	return s
}

// l2Advertisement converts an L2Advertisement.
func (c *converter) l2Advertisement(name string, labels map[string]string, s *L2AdvertisementSpec, r reporter) {
	var ifaces []v1alpha1.InterfaceName
	for _, i := range s.Interfaces {
		ifaces = append(ifaces, v1alpha1.InterfaceName(i))
	}
	pairs := selectorPairs(s.IPAddressPoolSelectors, s.NodeSelectors)
	for i, sp := range pairs {
		n := partName(name, i, len(pairs))
		if !c.claim("L2Advertisement", n, r) {
			continue
		}
		c.res.L2Advertisements = append(c.res.L2Advertisements, v1alpha1.L2Advertisement{
			TypeMeta: typeMeta("L2Advertisement"), ObjectMeta: meta(n, labels),
			Spec: v1alpha1.L2AdvertisementSpec{
				IPPools:        slices.Clone(s.IPAddressPools),
				IPPoolSelector: poolSelector(sp.pools, s.IPAddressPools),
				NodeSelector:   sp.nodes,
				Interfaces:     slices.Clone(ifaces),
			},
		})
	}
}

// bgpAdvertisement converts a BGPAdvertisement.
func (c *converter) bgpAdvertisement(name string, labels map[string]string, s *BGPAdvertisementSpec, r reporter) {
	spec := v1alpha1.BGPAdvertisementSpec{
		IPPools:             slices.Clone(s.IPAddressPools),
		Peers:               slices.Clone(s.Peers),
		AggregationLength:   s.AggregationLength,
		AggregationLengthV6: s.AggregationLengthV6,
	}
	if s.AggregationLength != nil && (*s.AggregationLength < 0 || *s.AggregationLength > 32) {
		r.add("aggregationLength", "%d is not a prefix length (0-32); not converted", *s.AggregationLength)
		spec.AggregationLength = nil
	}
	if s.AggregationLengthV6 != nil && (*s.AggregationLengthV6 < 0 || *s.AggregationLengthV6 > 128) {
		r.add("aggregationLengthV6", "%d is not a prefix length (0-128); not converted", *s.AggregationLengthV6)
		spec.AggregationLengthV6 = nil
	}
	if s.LocalPref != 0 {
		lp := int64(s.LocalPref)
		spec.LocalPref = &lp
	}
	for i, v := range s.Communities {
		if cm, ok := c.community(v, fmt.Sprintf("communities[%d]", i), r); ok && !slices.Contains(spec.Communities, cm) {
			spec.Communities = append(spec.Communities, cm)
		}
	}
	pairs := selectorPairs(s.IPAddressPoolSelectors, s.NodeSelectors)
	for i, sp := range pairs {
		n := partName(name, i, len(pairs))
		if !c.claim("BGPAdvertisement", n, r) {
			continue
		}
		part := *spec.DeepCopy()
		part.IPPoolSelector = poolSelector(sp.pools, s.IPAddressPools)
		part.NodeSelector = sp.nodes
		c.res.BGPAdvertisements = append(c.res.BGPAdvertisements, v1alpha1.BGPAdvertisement{
			TypeMeta: typeMeta("BGPAdvertisement"), ObjectMeta: meta(n, labels), Spec: part,
		})
	}
}

// community resolves a MetalLB community: a value, "large:a:b:c", or the
// name of an alias.
func (c *converter) community(v, field string, r reporter) (v1alpha1.Community, bool) {
	raw := strings.TrimSpace(v)
	if val, ok := c.aliases[raw]; ok {
		raw = val
	}
	value, isLarge := strings.CutPrefix(raw, "large:")
	cm, err := config.ParseCommunity(value)
	if err == nil && isLarge && !cm.Large {
		err = fmt.Errorf("large community %q: want large:a:b:c", raw)
	}
	if err != nil {
		if !isLarge && !strings.Contains(raw, ":") {
			r.add(field, "%q is neither a community value nor the name of a Community alias in the input; not converted", v)
		} else {
			r.add(field, "%v; not converted", err)
		}
		return "", false
	}
	return v1alpha1.Community(cm.String()), true
}

func (c *converter) addAliases(ref Ref, s CommunitySpec) {
	for i, a := range s.Communities {
		c.addAlias(ref, fmt.Sprintf("spec.communities[%d]", i), a.Name, a.Value)
	}
}

func (c *converter) addAlias(ref Ref, field, name, value string) {
	r := reporter{obj: ref, out: &c.res.Findings}
	if old, ok := c.aliases[name]; ok && old != value {
		r.add(field, "community alias %q is defined twice (%s and %s); using %s", name, old, value, old)
		return
	}
	c.aliases[name] = value
}

// peer converts a BGPPeer.
func (c *converter) peer(name string, labels map[string]string, s *BGPPeerSpec, r reporter) {
	addr, ok := peerAddress(s, r)
	if !ok || !c.claim("BGPPeer", name, r) {
		return
	}
	p := v1alpha1.BGPPeer{TypeMeta: typeMeta("BGPPeer"), ObjectMeta: meta(name, labels)}
	p.Spec = v1alpha1.BGPPeerSpec{
		MyASN:        v1alpha1.ASN(s.MyASN),
		PeerASN:      v1alpha1.ASN(s.PeerASN),
		PeerAddress:  addr.String(),
		PeerPort:     int32(s.PeerPort),
		EBGPMultiHop: s.EBGPMultiHop,
		BFDProfile:   s.BFDProfile,
	}
	localAddresses(s, addr, &p.Spec, r)
	p.Spec.HoldTime, p.Spec.KeepaliveTime = timers(s.HoldTime, s.KeepaliveTime, r)
	if s.ConnectTime != nil {
		r.add("connectTime", "no equivalent: Beacon retries a failed connection every 2s; not converted")
	}
	if s.DualStackAddressFamily {
		r.add("dualStackAddressFamily", "a Beacon session carries only the family of its peerAddress; add a BGPPeer to the router's address of the other family")
	}
	// disableMP (one family per session) is what Beacon always does.
	sel, exact := oneSelector(s.NodeSelectors)
	p.Spec.NodeSelector = nonEmpty(sel)
	if !exact {
		r.add("nodeSelectors", "Beacon takes one selector and these do not merge into one; kept only the first, so nodes matching only the others open no session to this peer")
	}
	if s.EnableGracefulRestart {
		p.Spec.GracefulRestart = &v1alpha1.GracefulRestart{Enabled: true}
	}
	c.password(name, s, &p.Spec, r)
	c.res.BGPPeers = append(c.res.BGPPeers, p)
}

// peerAddress returns the peer's address, or false (with a finding) when
// the peer cannot be converted at all.
func peerAddress(s *BGPPeerSpec, r reporter) (netip.Addr, bool) {
	switch {
	case s.DynamicASN != "":
		r.add("dynamicASN", "Beacon needs the router's AS number in peerASN; peer not converted")
		return netip.Addr{}, false
	case s.Interface != "":
		r.add("interface", "unnumbered BGP (a session over an interface, without peerAddress) has no equivalent; peer not converted")
		return netip.Addr{}, false
	case s.VRF != "":
		r.add("vrf", "Beacon opens sessions in the default VRF only; peer not converted")
		return netip.Addr{}, false
	}
	if !validASN(s.MyASN, "myASN", r) || !validASN(s.PeerASN, "peerASN", r) {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(s.PeerAddress)
	if err != nil || addr.Zone() != "" {
		r.add("peerAddress", "%q is not an IP address; peer not converted", s.PeerAddress)
		return netip.Addr{}, false
	}
	return addr, true
}

// localAddresses converts the source address (of peerAddress's family)
// and the router ID; an invalid one is left out, the peer still converted.
func localAddresses(s *BGPPeerSpec, peer netip.Addr, out *v1alpha1.BGPPeerSpec, r reporter) {
	if s.SourceAddress != "" {
		if src, err := netip.ParseAddr(s.SourceAddress); err != nil || src.Zone() != "" {
			r.add("sourceAddress", "%q is not an IP address; not converted", s.SourceAddress)
		} else if src.Is4() != peer.Is4() {
			r.add("sourceAddress", "%s is not of the family of peerAddress %s; not converted", src, peer)
		} else {
			out.SourceAddress = src.String()
		}
	}
	if s.RouterID != "" {
		if id, err := netip.ParseAddr(s.RouterID); err != nil || !id.Is4() {
			r.add("routerID", "%q is not an IPv4 address; not converted (Beacon uses the node's first IPv4 InternalIP)", s.RouterID)
		} else {
			out.RouterID = id.String()
		}
	}
}

// password refers the peer to its password Secret. MetalLB's Secret must
// be copied by the user to the speaker's namespace; an inline password
// becomes a Secret of the Result there.
func (c *converter) password(name string, s *BGPPeerSpec, out *v1alpha1.BGPPeerSpec, r reporter) {
	switch {
	case s.PasswordSecret != nil && s.PasswordSecret.Name != "":
		if s.Password != "" {
			r.add("password", "both password and passwordSecret are set; using passwordSecret")
		}
		out.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: s.PasswordSecret.Name, Key: "password"}
		from := s.PasswordSecret.Name
		if s.PasswordSecret.Namespace != "" {
			from = s.PasswordSecret.Namespace + "/" + from
		}
		r.add("passwordSecret", "copy Secret %s to namespace %s: beacon-speaker reads Secrets only there (key %q)", from, c.opts.SpeakerNamespace, "password")
	case s.Password != "":
		secret := name + "-bgp-password"
		out.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: secret, Key: "password"}
		c.res.Secrets = append(c.res.Secrets, corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: c.opts.SpeakerNamespace},
			Type:       corev1.SecretTypeOpaque,
			StringData: map[string]string{"password": s.Password},
		})
	}
}

func validASN(v uint32, field string, r reporter) bool {
	switch v {
	case 0:
		r.add(field, "AS 0 is reserved; peer not converted")
		return false
	case 23456:
		r.add(field, "AS 23456 is AS_TRANS, reserved; peer not converted")
		return false
	}
	return true
}

// timers checks hold and keepalive times against Beacon's rules (hold 0 or
// 3s-65535s, keepalive below hold, default hold 90s).
func timers(hold, keepalive *metav1.Duration, r reporter) (*metav1.Duration, *metav1.Duration) {
	if hold != nil && hold.Duration != 0 && (hold.Seconds() < 3 || hold.Seconds() > 65535) {
		r.add("holdTime", "%s is not 0 or between 3s and 65535s; not converted (default 90s)", hold.Duration)
		hold = nil
	}
	if keepalive != nil {
		limit := 90.0
		if hold != nil {
			limit = hold.Seconds()
		}
		if keepalive.Duration < 0 || (keepalive.Seconds() >= limit && (hold == nil || hold.Duration != 0)) {
			r.add("keepaliveTime", "%s is not shorter than the hold time; not converted (default a third of it)", keepalive.Duration)
			keepalive = nil
		}
	}
	return hold, keepalive
}

// bfdProfile converts a BFDProfile.
func (c *converter) bfdProfile(name string, labels map[string]string, s *BFDProfileSpec, r reporter) {
	if !c.claim("BFDProfile", name, r) {
		return
	}
	p := v1alpha1.BFDProfile{TypeMeta: typeMeta("BFDProfile"), ObjectMeta: meta(name, labels)}
	p.Spec.ReceiveInterval = bfdValue(s.ReceiveInterval, "receiveInterval", 10, 60000, r)
	p.Spec.TransmitInterval = bfdValue(s.TransmitInterval, "transmitInterval", 10, 60000, r)
	p.Spec.DetectMultiplier = bfdValue(s.DetectMultiplier, "detectMultiplier", 2, 255, r)
	if s.EchoMode != nil && *s.EchoMode {
		r.add("echoMode", "Beacon's BFD has no echo function; runs in asynchronous mode")
	}
	if s.EchoInterval != nil {
		r.add("echoInterval", "Beacon's BFD has no echo function; not converted")
	}
	if s.PassiveMode != nil && *s.PassiveMode {
		r.add("passiveMode", "Beacon's BFD always sends control packets (active mode)")
	}
	if s.MinimumTTL != nil {
		r.add("minimumTtl", "no equivalent; not converted")
	}
	c.res.BFDProfiles = append(c.res.BFDProfiles, p)
}

func bfdValue(v *uint32, field string, lo, hi uint32, r reporter) *int32 {
	if v == nil {
		return nil
	}
	if *v < lo || *v > hi {
		r.add(field, "%d is outside %d-%d; not converted", *v, lo, hi)
		return nil
	}
	out := int32(*v)
	return &out
}

func (c *converter) sortResult() {
	byName := func(a, b metav1.Object) int { return cmp.Compare(a.GetName(), b.GetName()) }
	slices.SortStableFunc(c.res.Pools, func(a, b v1alpha1.IPPool) int { return byName(&a, &b) })
	slices.SortStableFunc(c.res.L2Advertisements, func(a, b v1alpha1.L2Advertisement) int { return byName(&a, &b) })
	slices.SortStableFunc(c.res.BFDProfiles, func(a, b v1alpha1.BFDProfile) int { return byName(&a, &b) })
	slices.SortStableFunc(c.res.BGPPeers, func(a, b v1alpha1.BGPPeer) int { return byName(&a, &b) })
	slices.SortStableFunc(c.res.BGPAdvertisements, func(a, b v1alpha1.BGPAdvertisement) int { return byName(&a, &b) })
	slices.SortStableFunc(c.res.Secrets, func(a, b corev1.Secret) int { return byName(&a, &b) })
	slices.SortStableFunc(c.res.Services, func(a, b corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}
