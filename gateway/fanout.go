package gateway

import (
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/wire"
)

// A notification is fanned out in chunks of at most Config.FanoutChunk
// recipients. The first chunk runs on the calling bus dispatcher, the others
// on the pool, so both cores work on a large fan-out and the first recipient
// does not wait for the last. Deliver returns when every chunk is written
// (or queued), so one dispatcher delivers the messages of a channel in the
// order NATS gave them.

// chunk is one pool task of a fan-out. Chunks are pooled; run is bound once.
type chunk struct {
	srv     *Server
	frame   []byte
	zframe  []byte // frame compressed, for conns that negotiated deflate; nil to send frame to all
	conns   []*Conn
	deflate bool // a conn of the chunk negotiated deflate
	channel string
	seq     uint64 // the notification's sequence when it is durable, else 0
	wg      *sync.WaitGroup
	run     func()
}

// fanoutJob is the per-message scratch of Deliver, pooled.
type fanoutJob struct {
	chunks []*chunk
	wg     sync.WaitGroup
}

func (k *chunk) full() bool { return len(k.conns) == cap(k.conns) }

func (k *chunk) deliver() {
	delivered := 0
	for i, c := range k.conns {
		frame := k.frame
		if k.zframe != nil && c.state.Load() == stateOpen && c.deflate { // see addToChunks
			frame = k.zframe
		}
		var ok bool
		if k.seq != 0 {
			ok = c.writeDurable(frame, k.channel, k.seq)
		} else {
			ok = c.write(frame)
		}
		if ok {
			delivered++
		}
		k.conns[i] = nil
	}
	s, wg := k.srv, k.wg
	s.metrics.delivered.Add(float64(delivered))
	if k.seq != 0 {
		s.metrics.durableDelivered.Add(float64(delivered))
	}
	k.conns, k.frame, k.zframe, k.deflate, k.wg = k.conns[:0], nil, nil, false, nil
	k.channel, k.seq = "", 0
	s.chunks.Put(k)
	wg.Done()
}

func (s *Server) newChunk() any {
	k := &chunk{srv: s, conns: make([]*Conn, 0, s.cfg.FanoutChunk)}
	k.run = k.deliver
	return k
}

func (s *Server) takeChunk() *chunk { return s.chunks.Get().(*chunk) }

// compressOnce compresses a text message's body for the recipients that
// negotiated permessage-deflate, once for all of them, when there are any
// and its frame reaches CompressThreshold. It returns the compressed
// frame, or nil otherwise or when compression would not make it smaller.
func (s *Server) compressOnce(frame, body []byte, chunks []*chunk) []byte {
	if len(frame) < s.cfg.CompressThreshold {
		return nil
	}
	for _, k := range chunks {
		if k.deflate {
			s.metrics.compressed.Inc()
			return wire.Compress(ws.OpText, body)
		}
	}
	return nil
}

// Deliver sends a notification published on channel name to every local
// member of it: all connections for "broadcast", the members otherwise. The
// frame is encoded once and the same bytes are written to every recipient;
// a durable notification's frame carries its position pos, a volatile
// one's (pos zero) none. The bus calls it from its dispatcher goroutines;
// payload is not kept after Deliver returns.
func (s *Server) Deliver(name string, payload []byte, pos wire.Position) {
	if s.closed.Load() {
		return
	}
	start := time.Now()
	s.metrics.notifications.Inc()
	job := s.jobs.Get().(*fanoutJob)
	chunks := job.chunks[:0]
	if name == channel.Broadcast {
		for i := 0; i < shardCount; i++ {
			chunks = s.hub.shardChunks(i, chunks, s.takeChunkFn)
		}
	} else {
		chunks = s.hub.channelChunks(name, chunks, s.takeChunkFn)
	}
	if len(chunks) > 0 {
		frame, body := wire.MessageFrame(name, payload, pos)
		zframe := s.compressOnce(frame, body, chunks)
		job.wg.Add(len(chunks))
		for _, k := range chunks {
			k.frame, k.zframe, k.wg = frame, zframe, &job.wg
			k.channel, k.seq = name, pos.Seq
		}
		for _, k := range chunks[1:] {
			if s.pool.Schedule(k.run) != nil {
				k.run() // the pool is closed: finish on this goroutine
			}
		}
		chunks[0].run()
		job.wg.Wait()
		s.metrics.fanout.Observe(time.Since(start).Seconds())
	}
	clear(chunks)
	job.chunks = chunks[:0]
	s.jobs.Put(job)
}
