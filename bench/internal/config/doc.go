// Package config is the description of one wsbench run: the scenario, the
// targets, the load and the payload, as flags (FlagSet) and as the
// "config" member of a result. Normalize fills in the defaults and checks
// the values; the coordinator, the workers and the report all read the
// same normalized Config.
//
//	cfg := config.Config{Scenario: config.ScenarioBroadcast, Conns: 15000}
//	if err := cfg.Normalize(); err != nil {
//		return err
//	}
//
// A Config is a value: Normalize must not run concurrently with readers of
// the same Config; a normalized Config may be read from any goroutine.
package config
