// Package opstest reads the operations tier's alarms back from a plan, for
// the ops package's own tests and for the composed stack's (which check that
// every resource the stack holds is watched).
package opstest

import (
	"fmt"

	"webstack/internal/offline/plan"
)

// Alarm is a metric alarm of a plan with its metrics: one, or a metric-math
// alarm's inputs.
type Alarm struct {
	plan.Resource
	Metrics []Metric
}

// Metric is one metric an alarm reads, with its dimensions.
type Metric struct {
	Namespace, Name string
	Dims            map[string]string
}

// Alarms are the plan's metric alarms.
func Alarms(g *plan.Graph) []Alarm {
	var out []Alarm
	for _, r := range g.OfType("aws:cloudwatch/metricAlarm:MetricAlarm") {
		a := Alarm{Resource: r}
		if q := plan.List(r.Inputs["metricQueries"]); len(q) > 0 {
			for _, m := range q {
				if plan.Get(m, "metric") == nil {
					continue
				}
				a.Metrics = append(a.Metrics, metric(plan.Get(m, "metric", "namespace"), plan.Get(m, "metric", "metricName"), plan.Get(m, "metric", "dimensions")))
			}
		} else {
			a.Metrics = append(a.Metrics, metric(r.Inputs["namespace"], r.Inputs["metricName"], r.Inputs["dimensions"]))
		}
		out = append(out, a)
	}
	return out
}

func metric(ns, name, dims any) Metric {
	d := map[string]string{}
	if m, ok := dims.(map[string]any); ok {
		for k, x := range m {
			d[k] = fmt.Sprint(x)
		}
	}
	return Metric{Namespace: fmt.Sprint(ns), Name: fmt.Sprint(name), Dims: d}
}

// Watching returns the alarms with a metric ns/name whose dimensions
// include want.
func Watching(alarms []Alarm, ns, name string, want map[string]string) []Alarm {
	var out []Alarm
	for _, a := range alarms {
		for _, m := range a.Metrics {
			if m.Namespace == ns && m.Name == name && includes(m.Dims, want) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

func includes(dims, want map[string]string) bool {
	for k, v := range want {
		if dims[k] != v {
			return false
		}
	}
	return true
}
