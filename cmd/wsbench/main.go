// Command wsbench is the capacity harness of wsgate: connection ramps,
// broadcast, topic, unicast and churn scenarios against one gateway or a
// fleet, and the kernel's own floor for the same writes. Run
// `wsbench -help` for the scenarios and flags; the library is package
// bench.
//
//	wsbench broadcast --url ws://127.0.0.1:8080/ws --conns 15000 --server-pid $(pidof wsgate) --json b.json
//	wsbench broadcast --deflate --payload-kind json1k --server-metrics http://127.0.0.1:9090/metrics --json z.json
//	wsbench floor --conns 15000 --json floor.json
//	wsbench compare floor.json b.json
package main

import (
	"os"

	"github.com/wsgate/wsgate/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:]))
}
