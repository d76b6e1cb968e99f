package database

// InstanceLimits are what one DocumentDB instance of a class takes at
// once (Amazon DocumentDB developer guide, "Amazon DocumentDB quotas",
// "Instance quotas", the Amazon DocumentDB 5.0 table — this program's
// engine, EngineVersion "5.0.0"; 3.6's figures are about half, which is
// where the 500 and 1,700 once used here came from). CloudWatch reports
// each against its own limit metric: DatabaseConnectionsLimit,
// DatabaseCursorsLimit.
type InstanceLimits struct {
	Connections int // "Connections (all)": open, busy or idle
	Active      int // "Connections (active)": running an operation at once
	Cursors     int // "Cursor quota": cursors left open for a getMore
}

// instanceLimits are the 5.0 table's rows, by the classes this program
// allows (Graviton: config's dbInstanceClass; R6G's rows include R6GD).
var instanceLimits = map[string]InstanceLimits{
	"db.t4g.medium":    {Connections: 1000, Active: 102, Cursors: 30},
	"db.r6g.large":     {Connections: 3400, Active: 1100, Cursors: 450},
	"db.r6g.xlarge":    {Connections: 7000, Active: 2700, Cursors: 450},
	"db.r6g.2xlarge":   {Connections: 14200, Active: 4500, Cursors: 450},
	"db.r6g.4xlarge":   {Connections: 28400, Active: 4500, Cursors: 760},
	"db.r6g.8xlarge":   {Connections: 60000, Active: 4500, Cursors: 1520},
	"db.r6g.12xlarge":  {Connections: 60000, Active: 4500, Cursors: 2280},
	"db.r6g.16xlarge":  {Connections: 60000, Active: 4500, Cursors: 3040},
	"db.r6gd.xlarge":   {Connections: 7000, Active: 2700, Cursors: 450},
	"db.r6gd.2xlarge":  {Connections: 14200, Active: 4500, Cursors: 450},
	"db.r6gd.4xlarge":  {Connections: 28400, Active: 4500, Cursors: 760},
	"db.r6gd.8xlarge":  {Connections: 60000, Active: 4500, Cursors: 1520},
	"db.r6gd.12xlarge": {Connections: 60000, Active: 4500, Cursors: 2280},
	"db.r6gd.16xlarge": {Connections: 60000, Active: 4500, Cursors: 3040},
	"db.r8g.large":     {Connections: 3400, Active: 1100, Cursors: 450},
	"db.r8g.xlarge":    {Connections: 7000, Active: 2700, Cursors: 450},
	"db.r8g.2xlarge":   {Connections: 14200, Active: 4500, Cursors: 450},
	"db.r8g.4xlarge":   {Connections: 28400, Active: 4500, Cursors: 760},
	"db.r8g.8xlarge":   {Connections: 60000, Active: 4500, Cursors: 1520},
	"db.r8g.12xlarge":  {Connections: 60000, Active: 4500, Cursors: 2280},
	"db.r8g.16xlarge":  {Connections: 60000, Active: 4500, Cursors: 3040},
	"db.r8g.24xlarge":  {Connections: 60000, Active: 4500, Cursors: 4560},
	"db.r8g.48xlarge":  {Connections: 60000, Active: 4500, Cursors: 9120},
}

// LimitsOf are the limits of one instance of class; ok is false for a
// class the table does not hold.
func LimitsOf(class string) (l InstanceLimits, ok bool) {
	l, ok = instanceLimits[class]
	return l, ok
}

// PlannerVersion is the cluster's query planner (the parameter group's
// planner_version; see NewCluster for why).
const PlannerVersion = "2.0"
