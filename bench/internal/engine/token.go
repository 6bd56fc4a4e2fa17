package engine

import (
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/wsgate/wsgate/bench/internal/token"
)

// tokenLifetime is how long a client's token is valid: longer than any run.
const tokenLifetime = 24 * time.Hour

// signTokens signs the token of each of this worker's connections, on
// every CPU, before the ramp: an RSA-2048 signature costs the client about
// as much as a whole upgrade costs the gateway, and signing in the dialers
// would make the connect rate and the handshake latency the client's.
// A reconnecting connection presents its token again.
func (e *Engine) signTokens() ([]string, error) {
	s, err := token.New([]byte(e.spec.JWTSecret), e.cfg.JWTKey, e.cfg.JWTKid)
	if err != nil {
		return nil, err
	}
	tokens := make([]string, e.count())
	exp := time.Now().Add(tokenLifetime)
	procs := runtime.GOMAXPROCS(0)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := p; k < len(tokens); k += procs {
				user := e.cfg.UserPrefix + strconv.Itoa(e.global(int32(k)))
				if tokens[k], errs[p] = s.Sign(user, exp); errs[p] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return tokens, nil
}
