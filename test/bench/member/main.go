// Command member is `make bench-member`: speaker membership at 100 to
// 5,000 nodes in the simulator (speaker/member/sim), today's all-to-all
// protocol next to the version 3 watchers in the same run.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/beaconlb/beacon/speaker/member/sim"
)

func main() {
	var o sim.BenchOptions
	flag.IntVar(&o.BaselineMax, "baseline-max", 1000, "largest size whose all-to-all baseline is simulated (at 5,000, 0.3 s simulated took over 10 minutes)")
	flag.IntVar(&o.WatchMax, "watch-max", 5000, "largest size whose version 3 run is simulated")
	flag.DurationVar(&o.Soak, "soak", 0, "simulated time of each version 3 run after its crashes")
	sizes := flag.String("sizes", "100,1000,5000", "cluster sizes, comma-separated")
	flag.IntVar(&o.Crashes, "crashes", 20, "crashes per size and protocol")
	flag.DurationVar(&o.Hour, "hour", time.Hour, "simulated time of the version 3 false-failover run")
	flag.DurationVar(&o.BaselineHour, "baseline-hour", time.Minute, "simulated time of the baseline false-failover run")
	flag.IntVar(&o.HourNodes, "hour-nodes", 100, "nodes in the false-failover runs")
	flag.Uint64Var(&o.Seed, "seed", 1, "random seed")
	flag.Float64Var(&o.Loss, "loss", 0, "packet loss instead of 2% (0.1 = 10%), for the odds of false deaths")
	flag.Parse()
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "bad size %q\n", f)
			os.Exit(2)
		}
		o.Sizes = append(o.Sizes, n)
	}
	start := time.Now()
	sim.Bench(os.Stdout, o)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("simulator: %v wall, %d MiB obtained from the OS (peak heap and stacks)\n", time.Since(start).Round(time.Second), ms.Sys>>20)
}
