package gateway

import (
	"bytes"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// In conformance echo mode a client gets no welcome and every data
// message back with its opcode; the frame checks stay as strict.
func TestConformanceEcho(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ConformanceEcho = true; c.Auth = InsecureAuth{} })
	c, err := e.dialURL(e.url+"?user=echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		op   ws.OpCode
		data []byte
	}{
		{ws.OpText, []byte("hello")},
		{ws.OpBinary, []byte{0, 1, 2, 0xff}},
		{ws.OpText, []byte{}},
	} {
		if err := wsutil.WriteClientMessage(c.Conn, m.op, m.data); err != nil {
			t.Fatal(err)
		}
		data, op, err := c.ReadData(time.Now().Add(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if op != m.op || !bytes.Equal(data, m.data) {
			t.Fatalf("echo = %v %q, want %v %q", op, data, m.op, m.data)
		}
	}
	// Invalid UTF-8 in a text message still fails the connection.
	if err := wsutil.WriteClientMessage(c.Conn, ws.OpText, []byte{0xff, 0xfe}); err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode(); code != ws.StatusInvalidFramePayloadData {
		t.Fatalf("close code %d, want 1007", code)
	}
}
