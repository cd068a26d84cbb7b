// Command piobench measures a pio cluster of real `pio serve` processes on
// loopback and prints one JSON object per scenario on stdout (progress goes to
// stderr). `make bench` runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		pio           = flag.String("pio", "./bin/pio", "the pio binary")
		scenarios     = flag.String("scenarios", "failover,writes,memory,detection,stability,scale", "comma-separated scenarios: failover, writes, idle, memory, detection, stability, scale, dispatch, readings, readings_week, sdcard")
		trials        = flag.Int("trials", 20, "failover trials")
		clients       = flag.Int("clients", 64, "concurrent HTTP clients of the writes scenario")
		duration      = flag.Duration("duration", 10*time.Second, "how long the writes scenario writes")
		keep          = flag.Bool("keep", false, "keep the data dirs and logs (printed on stderr)")
		stableFor     = flag.Duration("stability", 60*time.Second, "how long the stability scenario writes")
		scaleN        = flag.Int("scale", 100, "nodes of the scale scenario")
		scaleWait     = flag.Duration("scale-wait", 4*time.Minute, "how long the scale scenario waits for the nodes to agree")
		scaleStable   = flag.Duration("scale-stable", 5*time.Minute, "how long the scale scenario watches the converged cluster (0: not at all)")
		scaleFailover = flag.Int("scale-failover", 5, "leader kills of the scale scenario, after the watch")
		scaleStarts   = flag.Int("scale-starts", 8, "how many nodes the scale scenario starts at once")
		weekDays      = flag.Int("week-days", 7, "days of readings the readings_week scenario stores")
		sdDays        = flag.Int("sd-days", 2, "days of readings history the sdcard scenario stores before it measures")
		sdWindow      = flag.Duration("sd-window", 16*time.Minute, "how long the sdcard scenario measures the writes of 20 workers (at least one readings.db commit: 15 min)")
		chaosN        = flag.Int("chaos", 0, "run this many chaos schedules instead of the scenarios")
		faults        = flag.Int("chaos-faults", 4, "faults per chaos schedule")
		seed          = flag.Uint64("seed", uint64(time.Now().UnixNano()%1000000), "first chaos seed (a schedule's seed reproduces it)")
		outDir        = flag.String("out", ".", "where chaos writes porcupine visualizations of violations")
		idleFor       = flag.Duration("idle-window", 30*time.Second, "how long the idle scenario measures")
		profDir       = flag.String("profile", "", "the idle scenario saves a CPU and a heap profile of each node here (pprof format)")
	)
	flag.Parse()
	if *chaosN > 0 {
		if status, ran := reexecInNetns(); ran {
			os.Exit(status)
		}
	}
	b := &bench{pio: *pio, keep: *keep, profileDir: *profDir}
	if err := b.init(); err != nil {
		fmt.Fprintln(os.Stderr, "piobench:", err)
		os.Exit(1)
	}
	defer b.cleanup()
	// Interrupted, it still stops the nodes and unmounts their devices.
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		b.cleanup()
		os.Exit(130)
	}()
	ctx := context.Background()
	if *chaosN > 0 {
		res, err := b.chaos(*chaosN, *faults, *seed, *outDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "piobench: chaos:", err)
			b.keep = true // the logs tell what happened
			b.cleanup()
			os.Exit(1)
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
		t := res.(map[string]any)
		if t["linearizability_violations"] != 0 || t["lost_acknowledged_writes"] != 0 || t["diverged"] != 0 {
			b.cleanup()
			os.Exit(2)
		}
		return
	}
	failed := false
	for _, s := range strings.Split(*scenarios, ",") {
		var res any
		var err error
		switch strings.TrimSpace(s) {
		case "failover":
			res, err = b.failover(ctx, *trials)
		case "writes":
			res, err = b.writes(ctx, *clients, *duration)
		case "memory":
			res, err = b.memory(ctx)
		case "detection":
			res, err = b.detection(ctx, *trials)
		case "stability":
			res, err = b.stability(ctx, 16, *stableFor)
		case "scale":
			res, err = b.scale(ctx, *scaleN, *scaleStarts, *scaleWait, *scaleStable, *scaleFailover)
		case "dispatch":
			res, err = b.dispatch(ctx, 200, 20)
		case "idle":
			res, err = b.idle(ctx, *idleFor)
		case "readings":
			res, err = b.readingsLoad(ctx, 20, 60*time.Second)
		case "sdcard":
			res, err = b.sdcard(ctx, 20, *sdDays, *sdWindow)
		case "readings_week":
			res, err = b.readingsWeek(ctx, 20, *weekDays)
		default:
			err = fmt.Errorf("unknown scenario %q", s)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "piobench: %s: %v\n", s, err)
			failed = true
			continue
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
	}
	if failed {
		b.cleanup()
		os.Exit(1)
	}
}
