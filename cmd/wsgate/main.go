// Command wsgate is the WebSocket notification gateway.
//
//	wsgate [flags]                      run the gateway (see -help)
//	wsgate publish [flags] PAYLOAD      publish a notification through NATS
//	wsgate token [flags]                sign an HS256 token for testing JWT mode
//
// Every flag has an environment equivalent: --nats-url is WSGATE_NATS_URL.
// A flag given on the command line wins over the environment.
package main

import (
	"fmt"
	"os"
)

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == "publish":
		err = publish(args[1:])
	case len(args) > 0 && args[0] == "token":
		err = signToken(args[1:])
	default:
		err = serve(args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsgate:", err)
		os.Exit(1)
	}
}
