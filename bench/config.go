package bench

import "github.com/wsgate/wsgate/bench/internal/config"

// Config is one wsbench run. Every field is a flag of the same name (see
// FlagSet); zero values mean the defaults Normalize applies, which Run
// does first.
type Config = config.Config

// Duration is a time.Duration that reads and writes as "1.5s" in flags
// and JSON.
type Duration = config.Duration

// Scenarios, in the order the help lists them.
const (
	ScenarioConnect   = config.ScenarioConnect
	ScenarioBroadcast = config.ScenarioBroadcast
	ScenarioTopic     = config.ScenarioTopic
	ScenarioUnicast   = config.ScenarioUnicast
	ScenarioChurn     = config.ScenarioChurn
	ScenarioFloor     = config.ScenarioFloor
	ScenarioResume    = config.ScenarioResume
	ScenarioControl   = config.ScenarioControl
	ScenarioUpstream  = config.ScenarioUpstream
	ScenarioScale     = config.ScenarioScale
)

// Scenarios lists every scenario name.
var Scenarios = config.Scenarios

// Payload kinds (--payload-kind).
const (
	PayloadPad    = config.PayloadPad
	PayloadJSON1K = config.PayloadJSON1K
	PayloadFile   = config.PayloadFile
)

// PayloadKinds lists the values of --payload-kind.
var PayloadKinds = config.PayloadKinds
