// Command member is `make bench-member`: speaker membership at 100 to
// 5,000 nodes in the simulator (speaker/member/sim), today's all-to-all
// protocol next to the version 3 watchers in the same run.
package main

import (
	"flag"
	"os"
	"time"

	"github.com/beaconlb/beacon/speaker/member/sim"
)

func main() {
	var o sim.BenchOptions
	flag.IntVar(&o.BaselineMax, "baseline-max", 1000, "largest size whose all-to-all baseline is simulated")
	flag.IntVar(&o.WatchMax, "watch-max", 1000, "largest size whose version 3 run is simulated")
	flag.IntVar(&o.Crashes, "crashes", 20, "crashes per size and protocol")
	flag.DurationVar(&o.Hour, "hour", time.Hour, "simulated time of the version 3 false-failover run")
	flag.DurationVar(&o.BaselineHour, "baseline-hour", time.Minute, "simulated time of the baseline false-failover run")
	flag.IntVar(&o.HourNodes, "hour-nodes", 100, "nodes in the false-failover runs")
	flag.Uint64Var(&o.Seed, "seed", 1, "random seed")
	flag.Parse()
	o.Sizes = []int{100, 1000, 5000}
	sim.Bench(os.Stdout, o)
}
