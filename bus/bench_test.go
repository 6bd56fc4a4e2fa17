package bus

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDispatch measures the whole path of a notification: a publisher
// connection publishes, the server routes, the bus's connection parses, the
// shared channel queues, a dispatcher calls the Handler. Allocations include
// nats.go's (message, subject, payload copy) on both connections; the bus's
// own share is BenchmarkDeliver.
func BenchmarkDispatch(b *testing.B) {
	for _, size := range []int{16, 256, 4096} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			var got atomic.Int64
			bus, _ := newBus(b, Config{}, func(string, []byte, Position) { got.Add(1) })
			if err := bus.Interest("user.42"); err != nil {
				b.Fatal(err)
			}
			p := newPublisher(b, bus.ClientURL())
			payload := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := p.User("42", payload); err != nil {
					b.Fatal(err)
				}
			}
			// Wait until every message was delivered or dropped (the
			// publisher can outrun the dispatchers).
			if err := p.Flush(0); err != nil {
				b.Fatal(err)
			}
			for got.Load()+int64(bus.Dropped()) < int64(b.N) {
				time.Sleep(100 * time.Microsecond)
			}
			b.ReportMetric(float64(bus.Dropped())/float64(b.N), "drops/op")
		})
	}
}

// BenchmarkDeliver measures the bus's own share of a delivery: stripping the
// prefix, reading a durable message's position, and calling the Handler.
func BenchmarkDeliver(b *testing.B) {
	var n uint64
	bus, _ := newBus(b, Config{}, func(ch string, payload []byte, pos Position) { n += uint64(len(ch)) + pos.Seq })
	for _, bc := range []struct {
		name string
		m    *message
	}{
		{"volatile", &message{subject: "notify.user.42", data: []byte("{}")}},
		{"durable", republished()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bus.deliver(bc.m)
			}
		})
	}
}

func BenchmarkInterestDrop(b *testing.B) {
	// A first interest: SUB, a confirmation round trip of its own, UNSUB.
	b.Run("new", func(b *testing.B) {
		bus, _ := newBus(b, Config{}, nil)
		b.ReportAllocs()
		for b.Loop() {
			if err := bus.Interest("user.1"); err != nil {
				b.Fatal(err)
			}
			bus.DropInterest("user.1")
		}
	})
	// First interests from many goroutines, sharing round trips.
	b.Run("new_parallel", func(b *testing.B) {
		bus, _ := newBus(b, Config{}, nil)
		var id atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(64)
		b.RunParallel(func(pb *testing.PB) {
			ch := "user.p" + strconv.FormatInt(id.Add(1), 10)
			for pb.Next() {
				if err := bus.Interest(ch); err != nil {
					b.Error(err)
					return
				}
				bus.DropInterest(ch)
			}
		})
	})
	// Another socket of a user who is already subscribed: refcount only.
	b.Run("held", func(b *testing.B) {
		bus, _ := newBus(b, Config{}, nil)
		if err := bus.Interest("user.1"); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := bus.Interest("user.1"); err != nil {
				b.Fatal(err)
			}
			bus.DropInterest("user.1")
		}
	})
}
