package twin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"webstack/internal/offline/plan"
)

// Listener is one listener of a load balancer, as the plan declares it.
type Listener struct {
	Port     int
	Protocol string // HTTP, HTTPS
	// Forward names the target group (its ARN); else the listener
	// redirects to RedirectPort over RedirectProtocol with RedirectStatus.
	Forward          string
	RedirectPort     string
	RedirectProtocol string
	RedirectStatus   int
}

// TargetGroup is a target group with its health check and members.
type TargetGroup struct {
	ARN, Name          string
	Port               int
	Path               string
	Matcher            string
	Interval, Timeout  time.Duration
	Healthy, Unhealthy int
	Targets            []string // host names (the group's Auto Scaling group's instances)
}

// balancers reads each load balancer's listeners and target groups.
func balancers(g *plan.Graph, m *Model) (map[string][]Listener, map[string]*TargetGroup, error) {
	listeners := map[string][]Listener{}
	groups := map[string]*TargetGroup{}
	for _, r := range g.OfType("aws:lb/targetGroup:TargetGroup") {
		hc := func(k string) any { return plan.Get(r.Inputs, "healthCheck", k) }
		tg := &TargetGroup{ARN: fmt.Sprint(r.Outputs["arn"]), Name: r.Name, Port: int(plan.Number(r.Inputs["port"])),
			Path: fmt.Sprint(hc("path")), Matcher: fmt.Sprint(hc("matcher")),
			Interval: time.Duration(plan.Number(hc("interval"))) * time.Second, Timeout: time.Duration(plan.Number(hc("timeout"))) * time.Second,
			Healthy: int(plan.Number(hc("healthyThreshold"))), Unhealthy: int(plan.Number(hc("unhealthyThreshold")))}
		if tg.Interval == 0 || tg.Healthy == 0 || tg.Unhealthy == 0 || tg.Path == "" {
			return nil, nil, fmt.Errorf("twin: target group %s has no complete health check", r.Name)
		}
		for _, asg := range g.OfType("aws:autoscaling/group:Group") {
			if slices.Contains(strs(asg.Inputs["targetGroupArns"]), tg.ARN) {
				for _, h := range m.Hosts {
					if h.Resource == asg.Key() {
						tg.Targets = append(tg.Targets, h.Name)
					}
				}
			}
		}
		groups[tg.ARN] = tg
	}
	for _, lb := range g.OfType("aws:lb/loadBalancer:LoadBalancer") {
		for _, l := range g.OfType("aws:lb/listener:Listener") {
			if l.Inputs["loadBalancerArn"] != lb.Outputs["arn"] {
				continue
			}
			li := Listener{Port: int(plan.Number(l.Inputs["port"])), Protocol: fmt.Sprint(l.Inputs["protocol"])}
			switch plan.Get(l.Inputs, "defaultActions", 0, "type") {
			case "forward":
				li.Forward = fmt.Sprint(plan.Get(l.Inputs, "defaultActions", 0, "targetGroupArn"))
				if groups[li.Forward] == nil {
					return nil, nil, fmt.Errorf("twin: listener %s forwards to an unknown target group", l.Name)
				}
			case "redirect":
				rd := func(k string) string { return fmt.Sprint(plan.Get(l.Inputs, "defaultActions", 0, "redirect", k)) }
				li.RedirectPort, li.RedirectProtocol = rd("port"), rd("protocol")
				li.RedirectStatus = http.StatusFound
				if rd("statusCode") == "HTTP_301" {
					li.RedirectStatus = http.StatusMovedPermanently
				}
			default:
				return nil, nil, fmt.Errorf("twin: listener %s: action %v is not modelled", l.Name, plan.Get(l.Inputs, "defaultActions", 0, "type"))
			}
			listeners[lb.Key()] = append(listeners[lb.Key()], li)
		}
	}
	return listeners, groups, nil
}

// TargetState is one target's health, as the target group sees it.
type TargetState struct {
	Host    string    `json:"host"`
	Address string    `json:"address"`
	State   string    `json:"state"` // initial, healthy, unhealthy
	Since   time.Time `json:"since"`
	ok, bad int
}

// balancer is a running load balancer of the twin.
type balancer struct {
	host   Host
	m      *Model
	groups map[string]*groupRun
	log    *slog.Logger
}

type groupRun struct {
	tg      *TargetGroup
	mu      sync.Mutex
	targets []*TargetState
	next    atomic.Uint64
}

// pick returns the next healthy target, round-robin; with none healthy,
// any (an ALB fails open when every target is unhealthy).
func (g *groupRun) pick() (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var healthy []string
	for _, t := range g.targets {
		if t.State == "healthy" {
			healthy = append(healthy, t.Address)
		}
	}
	if len(healthy) == 0 {
		for _, t := range g.targets {
			healthy = append(healthy, t.Address)
		}
	}
	if len(healthy) == 0 {
		return "", false
	}
	return healthy[int(g.next.Add(1))%len(healthy)], true
}

// check runs the group's health checks from the balancer's namespace.
func (b *balancer) check(ctx context.Context, g *groupRun, onChange func()) {
	client := ClientIn(b.host.Namespace)
	client.Timeout = g.tg.Timeout
	tick := time.NewTicker(g.tg.Interval)
	defer tick.Stop()
	for {
		for _, t := range g.targets {
			resp, err := client.Get("http://" + t.Address + g.tg.Path)
			pass := err == nil && strconv.Itoa(resp.StatusCode) == g.tg.Matcher
			if err == nil {
				resp.Body.Close()
			}
			g.mu.Lock()
			prev := t.State
			if pass {
				t.ok, t.bad = t.ok+1, 0
				if t.State != "healthy" && t.ok >= g.tg.Healthy {
					t.State = "healthy"
				}
			} else {
				t.ok, t.bad = 0, t.bad+1
				if t.State == "healthy" && t.bad >= g.tg.Unhealthy || t.State == "initial" && t.bad >= g.tg.Unhealthy {
					t.State = "unhealthy"
				}
			}
			changed := prev != t.State
			if changed {
				t.Since = time.Now()
			}
			g.mu.Unlock()
			if changed {
				b.log.Info("target health", "balancer", b.host.Name, "group", g.tg.Name, "target", t.Host, "from", prev, "to", t.State)
				onChange()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// serveListener serves one listener on ln.
func (b *balancer) handler(l Listener) http.Handler {
	if l.Forward == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			port := ":" + l.RedirectPort
			if l.RedirectProtocol == "HTTPS" && l.RedirectPort == "443" {
				port = ""
			}
			http.Redirect(w, r, "https://"+host+port+r.URL.RequestURI(), l.RedirectStatus)
		})
	}
	g := b.groups[l.Forward]
	proto := "http"
	if l.Protocol == "HTTPS" {
		proto = "https"
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target, _ := g.pick()
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", target
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Forwarded-Proto", proto)
			pr.Out.Header.Set("X-Forwarded-Port", strconv.Itoa(l.Port))
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialIn(ctx, b.host.Namespace, addr)
		}},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			b.log.Warn("target unreachable", "balancer", b.host.Name, "err", err)
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		},
	}
}

// serveBalancers runs every load balancer of the plan in its namespace:
// its listeners, its target groups' health checks, and round-robin to
// healthy targets. Target health is written to state/targets.json on every
// change (the drills read it).
func (m *Model) serveBalancers(ctx context.Context, state State, p *pki, log *slog.Logger) error {
	listeners, groups := m.Listeners, m.TargetGroups
	runs := map[string]*groupRun{}
	var all []*groupRun
	for arn, tg := range groups {
		gr := &groupRun{tg: tg}
		for _, name := range tg.Targets {
			h, _ := m.Host(name)
			gr.targets = append(gr.targets, &TargetState{Host: name, Address: netip.AddrPortFrom(h.Address, uint16(tg.Port)).String(), State: "initial", Since: time.Now()})
		}
		runs[arn] = gr
		all = append(all, gr)
	}
	var wmu sync.Mutex
	write := func() {
		wmu.Lock()
		defer wmu.Unlock()
		out := map[string][]TargetState{}
		for _, gr := range all {
			gr.mu.Lock()
			for _, t := range gr.targets {
				out[gr.tg.Name] = append(out[gr.tg.Name], *t)
			}
			gr.mu.Unlock()
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		_ = os.WriteFile(state.path("targets.json.tmp"), b, 0o644)
		_ = os.Rename(state.path("targets.json.tmp"), state.path("targets.json"))
	}
	write()
	for _, h := range m.Hosts {
		if h.Tier != ALB && h.Tier != InternalALB {
			continue
		}
		b := &balancer{host: h, m: m, groups: runs, log: log}
		names := []string{h.DNSName}
		var ips []net.IP
		if h.Public.IsValid() {
			ips = append(ips, h.Public.AsSlice())
		}
		cert, err := p.leafIPs(ips, names...)
		if err != nil {
			return err
		}
		for _, l := range listeners[h.Resource] {
			ln, err := listenIn(h.Namespace, netip.AddrPortFrom(h.Address, uint16(l.Port)).String())
			if err != nil {
				return err
			}
			if l.Protocol == "HTTPS" {
				ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
			}
			srv := &http.Server{Handler: b.handler(l), ReadHeaderTimeout: 10 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			go func() { <-ctx.Done(); _ = srv.Close() }()
		}
		for arn, gr := range runs {
			if slices.ContainsFunc(listeners[h.Resource], func(l Listener) bool { return l.Forward == arn }) {
				go b.check(ctx, gr, write)
			}
		}
	}
	return nil
}

// TargetHealth reads state/targets.json: target group name → targets.
func TargetHealth(state State) (map[string][]TargetState, error) {
	b, err := os.ReadFile(state.path("targets.json"))
	if err != nil {
		return nil, err
	}
	var out map[string][]TargetState
	return out, json.Unmarshal(b, &out)
}
