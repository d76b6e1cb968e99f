package stack

import (
	"fmt"

	"webstack/database"
	"webstack/internal/config"
)

// ConnectionBudget is how many connections the api may open to each
// DocumentDB instance, worked out from what can run at once: the api's
// largest group during an instance refresh, each instance with two clients
// while a credential rotation keeps the old one beside the new, each
// client with its pool and its monitoring connections to every instance
// of the cluster (the driver's pool is per server: maxPoolSize connections
// to each, plus its heartbeat and, when it streams, its round-trip
// monitor — mongo-driver v2 x/mongo/driver/topology/server.go).
type ConnectionBudget struct {
	Class  string
	Limits database.InstanceLimits

	// APIPeak is how many api instances may run at once: apiMaxSize ×
	// maxHealthyPercentage (an instance refresh launches up to that share
	// of the desired capacity before it terminates; AWS, "instance
	// maintenance policy": desired 100 at 120 % is up to 120 instances)
	// in ha, 2 in single (a replaced instance is made before the old one is
	// deleted: Pulumi's default replacement).
	APIPeak int
	// Clients is the clients per api instance at once: 2 (the store keeps
	// the old client beside the new for the rotation's grace).
	Clients int
	// Monitor is each client's connections per instance besides its pool.
	Monitor int
	// Reserve is kept for people and tools (mongosh, backups, the console).
	Reserve int

	// Pool is the api's maxPoolSize (CONDUIT_DB_MAX_POOL): the most that
	// keeps Peak within the class's connections less Reserve and the api
	// instances' pools within its active connections, at most MaxPool.
	Pool int
}

const (
	// MaxPool is the pool size the budget never exceeds: the driver's
	// default, ample for an instance that serves at most a few hundred
	// requests at once.
	MaxPool = 100
	// MinPool is the least pool an api instance works with: below it a
	// burst of requests waits on the pool rather than the database.
	MinPool = 4
)

// Peak is the most connections the api may hold to one DocumentDB
// instance: every client of every api instance at its pool's size.
func (b ConnectionBudget) Peak() int { return b.APIPeak * b.Clients * (b.Pool + b.Monitor) }

// Budget works out the stack's connection budget, or says which setting
// to change when the database class cannot serve the api's group.
func Budget(cfg *config.Config) (ConnectionBudget, error) {
	class := cfg.Database.InstanceClass
	limits, ok := database.LimitsOf(class)
	if !ok {
		return ConnectionBudget{}, fmt.Errorf("dbInstanceClass: no connection limits known for %q: add its row of Amazon DocumentDB's instance quotas (5.0) to database/limits.go", class)
	}
	b := ConnectionBudget{Class: class, Limits: limits, APIPeak: 2, Clients: 2, Monitor: 2, Reserve: max(20, limits.Connections/10)}
	if cfg.Topology == config.HA {
		b.APIPeak = (cfg.API.MaxSize*cfg.MaxHealthyPercentage + 99) / 100
	}
	byConnections := (limits.Connections-b.Reserve)/(b.APIPeak*b.Clients) - b.Monitor
	byActive := limits.Active / b.APIPeak
	b.Pool = min(MaxPool, byConnections, byActive)
	if b.Pool < MinPool {
		return b, fmt.Errorf("dbInstanceClass: %s takes %d connections (%d active) per instance, and up to %d api instances (apiMaxSize %d × maxHealthyPercentage %d %%) "+
			"would have %d each, below the %d an instance needs: choose a larger dbInstanceClass, or lower apiMaxSize",
			class, limits.Connections, limits.Active, b.APIPeak, cfg.API.MaxSize, cfg.MaxHealthyPercentage, b.Pool, MinPool)
	}
	return b, nil
}
