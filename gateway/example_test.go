package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/gateway"
)

// A gateway behind an embedded NATS server, a browser-like client of user
// 42, and a service that notifies that user.
func Example() {
	// The bus first (here with its own NATS server), then the gateway,
	// then the bus is wired to it.
	b, err := bus.New(bus.Config{EmbeddedListen: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	s, err := gateway.New(gateway.Config{Bus: b, Auth: gateway.InsecureAuth{}})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := b.Start(s.Deliver); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go s.Serve(ln)

	// The client. InsecureAuth takes the user from ?user=; the welcome
	// frame comes right behind the 101, possibly in the dialer's buffer.
	conn, br, _, err := ws.Dial(context.Background(), "ws://"+ln.Addr().String()+"/ws?user=42")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	client := struct {
		io.Reader
		io.Writer
	}{r, conn}
	frame, err := wsutil.ReadServerText(client)
	if err != nil {
		log.Fatal(err)
	}
	var welcome struct{ Type, User string }
	json.Unmarshal(frame, &welcome)
	fmt.Println(welcome.Type, welcome.User)

	// A service publishes to user 42 on NATS; anything published after the
	// client has its welcome reaches it.
	nc, err := bus.Dial(b.ClientURL(), "example-service")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	if err := bus.NewPublisher(nc, "").User("42", []byte(`{"text":"hello"}`)); err != nil {
		log.Fatal(err)
	}
	frame, err = wsutil.ReadServerText(client)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(frame))
	// Output:
	// welcome 42
	// {"type":"message","channel":"user.42","data":{"text":"hello"}}
}
