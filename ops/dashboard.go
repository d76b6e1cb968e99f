package ops

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// columnTitles head the dashboard's columns.
var columnTitles = map[string]string{
	colEntry: "Entry", colWAF: "WAF", colWeb: "Web tier", colInternal: "Internal ALB", colAPI: "API tier (and NAT)", colDatabase: "DocumentDB",
}

// widget geometry: six columns of 4 units (the grid is 24 wide).
const (
	widgetWidth  = 4
	widgetHeight = 5
)

// dashboard draws specs as the request path, left to right (entry → WAF →
// web → internal ALB → api → DocumentDB), each column its traffic, errors,
// latency and saturation, an alarm's graph with its threshold.
func (c *Monitoring) dashboard(ctx *pulumi.Context, name string, a *MonitoringArgs, specs []spec) (*cloudwatch.Dashboard, error) {
	// Every dimension value is an output; resolve them all, then build.
	var values []any
	for _, s := range specs {
		for _, m := range s.metrics {
			for _, d := range m.dims {
				values = append(values, d.value)
			}
		}
	}
	body := pulumi.All(values...).ApplyT(func(resolved []any) (string, error) {
		return dashboardBody(a, specs, resolved)
	}).(pulumi.StringOutput)
	board, err := cloudwatch.NewDashboard(ctx, name+"-dashboard", &cloudwatch.DashboardArgs{
		DashboardName: pulumi.String(a.Names.Prefix),
		DashboardBody: body,
	}, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("ops: dashboard: %w", err)
	}
	return board, nil
}

// dashboardBody is the dashboard's JSON; resolved holds the specs'
// dimension values in order.
func dashboardBody(a *MonitoringArgs, specs []spec, resolved []any) (string, error) {
	next := 0
	value := func() string {
		v, _ := resolved[next].(string)
		next++
		return v
	}
	rows := map[string]int{}
	var widgets []any
	for i, col := range columns {
		widgets = append(widgets, map[string]any{
			"type": "text", "x": i * widgetWidth, "y": 0, "width": widgetWidth, "height": 1,
			"properties": map[string]any{"markdown": "### " + columnTitles[col]},
		})
		rows[col] = 1
	}
	for _, s := range specs {
		var metrics []any
		if s.expr != "" {
			metrics = append(metrics, []any{map[string]any{"expression": s.expr, "label": s.title, "id": "e1"}})
		}
		for j, m := range s.metrics {
			row := []any{m.namespace, m.name}
			for _, d := range m.dims {
				row = append(row, d.name, value())
			}
			opts := map[string]any{"stat": m.stat}
			if s.expr != "" {
				opts["id"], opts["visible"] = fmt.Sprintf("m%d", j+1), false
			}
			metrics = append(metrics, append(row, opts))
		}
		props := map[string]any{
			"title": s.title, "region": a.Region, "view": "timeSeries", "stacked": false,
			"period": s.period, "metrics": metrics,
		}
		if !s.graphOnly {
			props["annotations"] = map[string]any{"horizontal": []any{map[string]any{"label": "alarm " + a.Names.Prefix + "-" + s.what, "value": s.threshold}}}
		}
		x := 0
		for i, col := range columns {
			if col == s.column {
				x = i * widgetWidth
			}
		}
		widgets = append(widgets, map[string]any{
			"type": "metric", "x": x, "y": rows[s.column], "width": widgetWidth, "height": widgetHeight, "properties": props,
		})
		rows[s.column] += widgetHeight
	}
	if a.LoadBalancer == nil {
		widgets = append(widgets, map[string]any{
			"type": "text", "x": 3 * widgetWidth, "y": rows[colInternal], "width": widgetWidth, "height": 3,
			"properties": map[string]any{"markdown": "The single topology has no internal ALB: the web instance calls the api instance directly. " +
				"The web tier's own WAF (OWASP CRS) is in the WAF column."},
		})
	}
	b, err := json.Marshal(map[string]any{"widgets": widgets})
	return strings.TrimSpace(string(b)), err
}
