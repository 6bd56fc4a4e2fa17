// Package payload builds what wsbench publishes: JSON objects that start
// with "seq" and "ts", which the clients' delivery accounting reads, padded
// to a size or followed by the members of a template.
//
//	p := payload.Append(nil, seq, time.Now().UnixNano(), 200)
//
//	body, err := payload.Template([]byte(payload.JSON1K))
//	p = payload.AppendTemplate(p[:0], seq, time.Now().UnixNano(), body)
//
// Every function may be called from any goroutine.
package payload
