package netpoll

import "testing"

func TestEventString(t *testing.T) {
	tests := []struct {
		e    Event
		want string
	}{
		{0, "none"},
		{EventRead, "read"},
		{EventRead | EventHup, "read|hup"},
		{EventWrite | EventErr | EventHup, "write|hup|err"},
		{EventClosed, "closed"},
		{EventRead | 0x40, "read|0x40"},
		{0xf0, "closed|0xe0"},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("Event(%#x).String() = %q, want %q", uint8(tt.e), got, tt.want)
		}
	}
}
