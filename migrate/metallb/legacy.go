package metallb

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// legacySource is a ConfigMap holding MetalLB's legacy configuration.
type legacySource struct {
	ref Ref
	cfg LegacyConfig
}

// legacyConfig reads the legacy configuration of a ConfigMap, reporting a
// ConfigMap that does not hold one.
func (c *converter) legacyConfig(u *unstructured.Unstructured) (LegacyConfig, bool) {
	r := reporter{obj: refOf(u), out: &c.res.Findings}
	var cfg LegacyConfig
	data, _, _ := unstructured.NestedStringMap(u.Object, "data")
	text, ok := data["config"]
	if !ok {
		r.add("", "no data key \"config\": not a MetalLB configuration; skipped")
		return cfg, false
	}
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(text), &raw); err != nil {
		r.add("data.config", "not YAML (%v); skipped", err)
		return cfg, false
	}
	r.prefix = ""
	return cfg, c.decodeValue(raw, &cfg, r, "")
}

// legacy converts a legacy configuration. Its peers have no names: each
// gets one from its address.
func (c *converter) legacy(l legacySource) {
	at := func(prefix string) reporter {
		return reporter{obj: l.ref, prefix: prefix, legacy: true, out: &c.res.Findings}
	}
	for i, b := range l.cfg.BFDProfiles {
		r := at(fmt.Sprintf("bfd-profiles[%d].", i))
		if b.Name == "" {
			r.add("name", "missing; profile not converted")
			continue
		}
		c.bfdProfile(b.Name, nil, &BFDProfileSpec{
			ReceiveInterval: b.ReceiveInterval, TransmitInterval: b.TransmitInterval,
			DetectMultiplier: b.DetectMultiplier, EchoInterval: b.EchoInterval,
			EchoMode: b.EchoMode, PassiveMode: b.PassiveMode, MinimumTTL: b.MinimumTTL,
		}, r)
	}
	for i, p := range l.cfg.Peers {
		r := at(fmt.Sprintf("peers[%d].", i))
		spec := BGPPeerSpec{
			MyASN: p.MyASN, PeerASN: p.PeerASN, PeerAddress: p.PeerAddress,
			SourceAddress: p.SourceAddress, PeerPort: p.PeerPort, RouterID: p.RouterID,
			Password: p.Password, BFDProfile: p.BFDProfile, EBGPMultiHop: p.EBGPMultiHop,
			HoldTime: legacyDuration(p.HoldTime, "holdTime", r), KeepaliveTime: legacyDuration(p.KeepaliveTime, "keepaliveTime", r),
		}
		for _, ns := range p.NodeSelectors {
			spec.NodeSelectors = append(spec.NodeSelectors, legacySelector(ns))
		}
		c.peer(c.peerName(p.PeerAddress), nil, &spec, r)
	}
	for i, p := range l.cfg.AddressPools {
		r := at(fmt.Sprintf("address-pools[%d].", i))
		if p.Name == "" {
			r.add("name", "missing; pool not converted")
			continue
		}
		var ads []BGPAdvertisementSpec
		for _, a := range p.BGPAdvertisements {
			ad := BGPAdvertisementSpec{AggregationLength: a.AggregationLength, AggregationLengthV6: a.AggregationLengthV6, Communities: a.Communities}
			if a.LocalPref != nil {
				ad.LocalPref = *a.LocalPref
			}
			ads = append(ads, ad)
		}
		c.protocolPool(p.Name, nil, p.Protocol, &IPAddressPoolSpec{Addresses: p.Addresses, AutoAssign: p.AutoAssign, AvoidBuggyIPs: p.AvoidBuggyIPs}, ads, r,
			func(j int) reporter { return at(fmt.Sprintf("address-pools[%d].bgp-advertisements[%d].", i, j)) })
	}
}

// protocolPool converts a pool that names its protocol (a legacy ConfigMap
// entry, an AddressPool): the pool, and the advertisement of its protocol
// for it alone. A bgp pool without advertisements gets one with defaults.
func (c *converter) protocolPool(name string, labels map[string]string, protocol string, spec *IPAddressPoolSpec, ads []BGPAdvertisementSpec, r reporter, adReporter func(int) reporter) {
	c.pool(name, labels, spec, r)
	switch protocol {
	case "layer2":
		c.l2Advertisement(name, nil, &L2AdvertisementSpec{IPAddressPools: []string{name}}, r)
		if len(ads) > 0 {
			r.add("bgpAdvertisements", "ignored by MetalLB for a layer2 pool; not converted")
		}
	case "bgp":
		if len(ads) == 0 {
			ads = []BGPAdvertisementSpec{{}}
		}
		for j, a := range ads {
			a.IPAddressPools = []string{name}
			c.bgpAdvertisement(partName(name, j, len(ads)), nil, &a, adReporter(j))
		}
	default:
		r.add("protocol", "%q is neither layer2 nor bgp; the pool is not announced", protocol)
	}
}

// peerName names a legacy peer after its address: "peer-198-51-100-1".
func (c *converter) peerName(addr string) string {
	base := "peer-" + strings.NewReplacer(".", "-", ":", "-").Replace(strings.ToLower(strings.TrimSpace(addr)))
	name := base
	for i := 2; ; i++ {
		if _, taken := c.seen["BGPPeer/"+name]; !taken {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

func legacyDuration(s, field string, r reporter) *metav1.Duration {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		r.add(field, "%q is not a duration; not converted", s)
		return nil
	}
	return &metav1.Duration{Duration: d}
}

func legacySelector(s LegacyNodeSelector) metav1.LabelSelector {
	out := metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, e := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values,
		})
	}
	return out
}
