package bus_test

import (
	"context"
	"log"

	"github.com/wsgate/wsgate/bus"
)

// A gateway resumes a client that names the channels it listens to: it
// looks up the user's acked marks and the channels' last sequences in one
// request each, then replays what the client has not acked.
func ExampleHistory() {
	ctx := context.Background()
	b, err := bus.New(bus.Config{StoreDir: "/var/lib/wsgate/nats"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	if _, err := bus.ApplyStream(ctx, b.Conn(), bus.StreamConfig{}); err != nil {
		log.Fatal(err)
	}
	if _, err := bus.ApplyAckBucket(ctx, b.Conn(), bus.AckBucketConfig{}); err != nil {
		log.Fatal(err)
	}
	if _, err := b.TrackStream(ctx, ""); err != nil {
		log.Fatal(err)
	}
	h, err := b.History(bus.HistoryConfig{})
	if err != nil {
		log.Fatal(err)
	}

	channels := []string{"user.42", "topic.news"}
	users := []string{"42", "42"}
	marks := make([]bus.Position, len(channels))
	last := make([]uint64, len(channels))
	if err := h.Marks(ctx, users, channels, marks); err != nil {
		log.Fatal(err)
	}
	if err := h.Last(ctx, channels, last); err != nil {
		log.Fatal(err)
	}
	for i, ch := range channels {
		from := marks[i].Seq + 1
		if marks[i].Epoch != h.Epoch() {
			from = 0 // no mark, or one from before the stream was recreated: from the oldest kept
		}
		if last[i] < from {
			continue // nothing missed
		}
		more, err := h.Read(ctx, ch, from, 100, func(seq uint64, data []byte) {
			// send data with its position; data is valid only here
		})
		if err != nil {
			log.Fatal(err)
		}
		_ = more // more than 100 missed: read on, or tell the client
	}
	// Once the client acks sequence 17 of user.42:
	if err := h.PutMark(ctx, "42", "user.42", bus.Position{Seq: 17, Epoch: h.Epoch()}); err != nil {
		log.Fatal(err)
	}
}
