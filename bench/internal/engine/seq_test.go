package engine

import "testing"

func TestSeqAccounting(t *testing.T) {
	for _, tc := range []struct {
		name     string
		seqs     []uint32
		expected uint32
		want     SeqTotals
		gaps     uint32
	}{
		{"in order", []uint32{1, 2, 3, 4}, 4, SeqTotals{Expected: 4, Received: 4}, 0},
		{"loss in the middle", []uint32{1, 2, 4}, 4, SeqTotals{Expected: 4, Received: 3, Lost: 1}, 1},
		{"loss at the end", []uint32{1, 2}, 4, SeqTotals{Expected: 4, Received: 2, Lost: 2}, 0},
		{"nothing", nil, 3, SeqTotals{Expected: 3, Lost: 3}, 0},
		{"duplicate of the last", []uint32{1, 2, 2, 3}, 3, SeqTotals{Expected: 3, Received: 3, Duplicated: 1}, 0},
		{"duplicate of an older one", []uint32{1, 2, 3, 1}, 3, SeqTotals{Expected: 3, Received: 3, Duplicated: 1}, 0},
		{"reordered", []uint32{1, 3, 2, 4}, 4, SeqTotals{Expected: 4, Received: 4, Reordered: 1}, 0},
		{"reordered then duplicated", []uint32{2, 1, 1}, 2, SeqTotals{Expected: 2, Received: 2, Reordered: 1, Duplicated: 1}, 0},
		{"first arrival is late", []uint32{3, 1, 2}, 3, SeqTotals{Expected: 3, Received: 3, Reordered: 2}, 0},
		{"jump past the window", []uint32{1, 100, 2}, 100, SeqTotals{Expected: 100, Received: 3, Lost: 97, Reordered: 1}, 97},
		{"beyond the window counts as reordered", []uint32{1, 2, 70, 1}, 70, SeqTotals{Expected: 70, Received: 4, Lost: 66, Reordered: 1}, 66},
		{"window edge: 64 below", []uint32{1, 65, 1}, 65, SeqTotals{Expected: 65, Received: 2, Lost: 63, Duplicated: 1}, 63},
		{"more than expected", []uint32{1, 2, 3}, 2, SeqTotals{Expected: 2, Received: 2}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s seqState
			for _, q := range tc.seqs {
				s.add(q)
			}
			var got SeqTotals
			got.addKnown(&s, tc.expected)
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if g := s.gaps(); g != tc.gaps {
				t.Errorf("gaps %d, want %d", g, tc.gaps)
			}
		})
	}
}

func TestSeqStateSize(t *testing.T) {
	if ConnStructBytes > 128 {
		t.Errorf("conn is %d bytes; keep the per-connection state compact", ConnStructBytes)
	}
}
