package bus

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkDurablePublish measures durable publishes into the embedded
// server's JetStream (file storage in a temporary directory, the stream
// applied with its defaults, republish included), 200-byte payloads over
// 1,000 users, each with a message id as a careful publisher sends it:
//
//   - sync: one publisher waiting for each ack (Publisher.DurableUser);
//   - parallel: 64 goroutines doing the same at once;
//   - async: nats.go's jetstream.PublishMsgAsync with up to 256 acks
//     outstanding; the bus offers no asynchronous durable publish, so
//     this is what a publisher that batches would get.
//
// msgs/s is what the host stores; the figure includes the server's own
// CPU, which runs in this process.
func BenchmarkDurablePublish(b *testing.B) {
	payload := make([]byte, 200)
	for i := range payload {
		payload[i] = 'x'
	}
	const users = 1000
	b.Run("sync", func(b *testing.B) {
		bus, _ := newDurableBus(b, "", StreamConfig{})
		p := newPublisher(b, bus.ClientURL())
		ctx := context.Background()
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		i := 0
		for b.Loop() {
			id := "sync-" + strconv.Itoa(i)
			if _, err := p.DurableUser(ctx, strconv.Itoa(i%users), payload, WithMsgID(id)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("parallel", func(b *testing.B) {
		bus, _ := newDurableBus(b, "", StreamConfig{})
		p := newPublisher(b, bus.ClientURL())
		ctx := context.Background()
		var next atomic.Int64
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		b.SetParallelism(32) // × GOMAXPROCS 2 = 64, wsbench resume's --publishers
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				id := "par-" + strconv.FormatInt(i, 10)
				if _, err := p.DurableUser(ctx, strconv.FormatInt(i%users, 10), payload, WithMsgID(id)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("async", func(b *testing.B) {
		bus, _ := newDurableBus(b, "", StreamConfig{})
		nc, err := Dial(bus.ClientURL(), "bench-publisher")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(256))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		var futures []jetstream.PubAckFuture
		b.ResetTimer()
		for i := range b.N {
			m := &nats.Msg{Subject: DurablePrefix("") + ".user." + strconv.Itoa(i%users), Data: payload}
			f, err := js.PublishMsgAsync(m, jetstream.WithMsgID("async-"+strconv.Itoa(i)))
			if err != nil {
				b.Fatal(err)
			}
			futures = append(futures, f)
		}
		// The time includes the last acks.
		<-js.PublishAsyncComplete()
		b.StopTimer()
		for _, f := range futures {
			select {
			case err := <-f.Err():
				b.Fatal(err)
			default:
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}
