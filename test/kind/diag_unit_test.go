package kind

import (
	"slices"
	"testing"
	"time"
)

func TestUnansweredSYNs(t *testing.T) {
	r := &recorder{}
	for _, l := range []string{
		"1796645329.270873 02:bf:ad:cf:97:19 > 66:73:ab:78:ff:cf, ethertype IPv4 (0x0800), length 74: 198.18.101.100.39672 > 198.18.110.0.80: Flags [S], seq 3385729624, win 64240, length 0",
		"1796645329.270979 66:73:ab:78:ff:cf > 02:bf:ad:cf:97:19, ethertype IPv4 (0x0800), length 74: 198.18.110.0.80 > 198.18.101.100.39672: Flags [S.], seq 3709126653, ack 3385729625, length 0",
		"1796645329.271000 02:bf:ad:cf:97:19 > 66:73:ab:78:ff:cf, ethertype IPv4 (0x0800), length 74: 198.18.101.100.39674 > 198.18.110.0.80: Flags [S], seq 1, win 64240, length 0",
		"1796645329.290000 02:bf:ad:cf:97:19 > 66:73:ab:78:ff:cf, ethertype IPv4 (0x0800), length 74: 198.18.101.100.39676 > 198.18.110.0.80: Flags [S], seq 1, win 64240, length 0",
		"1796645329.271100 02:bf:ad:cf:97:19 > 66:73:ab:78:ff:cf, ethertype IPv4 (0x0800), length 74: 198.18.101.100.39678 > 198.18.110.1.80: Flags [S], seq 1, win 64240, length 0",
	} {
		r.add("lan", l)
	}
	r.add("router", "1796645329.271 not a capture")
	from := time.Unix(1796645329, 270000000)
	got := r.unansweredSYNs(from, from.Add(10*time.Millisecond), "198.18.110.0")
	// 39672 was answered, 39676 is outside the window, 39678 went elsewhere.
	if want := []uint16{39674}; !slices.Equal(got, want) {
		t.Errorf("unanswered SYNs %v, want %v", got, want)
	}
}

// TestTraceSkipsTails: the lines of a trace whose start came before reset
// make no packet (it would look untranslated).
func TestTraceSkipsTails(t *testing.T) {
	tr := &trace{ids: map[string]*tracedPacket{}}
	tr.add(`trace id aa ip e2e-trace pre packet: iif "eth0" ip saddr 198.18.101.100 ip daddr 198.18.100.200 tcp dport 80`)
	tr.reset()
	tr.add(`trace id aa ip filter FORWARD packet: iif "eth0" oif "cni0" ip saddr 198.18.101.100 ip daddr 198.18.131.8 tcp dport 5000`)
	tr.add(`trace id bb ip e2e-trace pre packet: iif "eth0" ip saddr 198.18.101.100 ip daddr 198.18.100.200 tcp dport 80`)
	tr.add(`trace id bb ip beacon-svc4 svc-x rule numgen random mod 2 0 meta l4proto tcp dnat to 198.18.131.8:5000 (verdict accept)`)
	var got []string
	for src, ps := range tr.bySource() {
		for _, p := range ps {
			got = append(got, src.String()+" "+p.id)
		}
	}
	if want := []string{"198.18.101.100 bb"}; !slices.Equal(got, want) {
		t.Errorf("packets %q, want %q", got, want)
	}
}
