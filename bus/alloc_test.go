package bus

import (
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestDeliverAllocs(t *testing.T) {
	var n uint64
	b, _ := newBus(t, Config{}, func(ch string, payload []byte, pos Position) { n += uint64(len(ch)+len(payload)) + pos.Seq })
	volatile := &message{subject: "notify.user.42", data: []byte("{}")}
	if got := testing.AllocsPerRun(1000, func() { b.deliver(volatile) }); got != 0 {
		t.Errorf("deliver of a volatile message: %v allocs, want 0", got)
	}
	if n == 0 {
		t.Error("Handler not called")
	}
	n = 0
	if got := testing.AllocsPerRun(1000, func() { b.deliver(republished()) }); got != 0 {
		t.Errorf("deliver of a durable message: %v allocs, want 0", got)
	}
	if n < 1000*7 {
		t.Errorf("Handler saw no position: %d", n)
	}
}

// durableMsg is a durable notification as the stream republishes it,
// headers parsed.
var durableMsg = message{
	subject: "notify.user.42",
	data:    []byte("{}"),
	header: nats.Header{
		"Nats-Stream":        {"NOTIFY"},
		"Nats-Subject":       {"durable.notify.user.42"},
		"Nats-Sequence":      {"7"},
		"Nats-Last-Sequence": {"5"},
	},
}

func republished() *message { return &durableMsg }

func TestHeldInterestAllocs(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	if err := b.Interest("user.1"); err != nil {
		t.Fatal(err)
	}
	got := testing.AllocsPerRun(1000, func() {
		if err := b.Interest("user.1"); err != nil {
			t.Fatal(err)
		}
		b.DropInterest("user.1")
	})
	if got != 0 {
		t.Errorf("Interest+DropInterest of a held channel: %v allocs, want 0", got)
	}
}

// TestMemoryPerSubscription logs the heap each distinct channel costs:
// client side only (the bus's map entry and nats.go's Subscription, against
// a server that is not there), and with the embedded server's share (its
// subscription and subject index) in the same process.
func TestMemoryPerSubscription(t *testing.T) {
	const n = 10000

	client, _ := newBus(t, Config{URL: deadURL(t)}, nil)
	perClient := heapGrowth(n, func(i int) {
		if _, err := client.acquire("user.m" + strconv.Itoa(i)); err != nil {
			t.Error(err)
		}
	})
	client.Close()

	b, _ := newBus(t, Config{}, nil)
	var wg sync.WaitGroup
	perTotal := heapGrowth(n, func(i int) {
		// In 16 batches of concurrent calls, so that flushes are shared.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Interest("user.m" + strconv.Itoa(i)); err != nil {
				t.Error(err)
			}
		}()
		if i%(n/16) == n/16-1 {
			wg.Wait()
		}
	})
	wg.Wait()
	if got := b.Subscriptions(); got != n {
		t.Fatalf("Subscriptions() = %d, want %d", got, n)
	}
	t.Logf("heap per subscribed channel over %d channels: %.0f B client side (the bus's map slot and the channel's name), %.0f B with the embedded server's share (%.0f B server)",
		n, perClient, perTotal, perTotal-perClient)
	// A gateway pays this per connected user, so it has a budget: about
	// 70 B measured, where nats.go's Subscription alone was 240 B. Above
	// 96 B something was added to every subscription.
	if perClient > 96 {
		t.Errorf("client-side heap per subscription = %.0f B, want at most 96 B", perClient)
	}
}

// heapGrowth returns the live heap added per call of f(0..n-1), after GC.
func heapGrowth(n int, f func(i int)) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		f(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}
