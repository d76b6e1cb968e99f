// Package waf is the web tier's web application firewall: Coraza running the
// OWASP Core Rule Set (paranoia level 1, inbound anomaly threshold 5, engine
// on), with the narrowest exclusions a blogging API needs.
package waf

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"
)

// Mode is how the WAF acts on a match.
type Mode string

const (
	On     Mode = "on"     // block requests whose anomaly score reaches the threshold
	Detect Mode = "detect" // log and count, never block
	Off    Mode = "off"    // no WAF
)

// ParseMode validates a --waf value.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case On, Detect, Off:
		return Mode(s), nil
	}
	return "", fmt.Errorf("waf mode %q: use on, detect or off", s)
}

// contentEndpoints are where Conduit accepts user-written text: articles
// and comments (markdown), and bios, through the api (JSON) and through the
// site's forms. A blogging site must accept markdown that holds code (SQL,
// <script> in a code block, shell), so these fields — and only these, only
// on these endpoints — are removed from the attack-detection rules. The
// same payload anywhere else (query string, headers, other fields, other
// endpoints) is still inspected.
var contentEndpoints = []struct {
	methods string // REQUEST_METHOD regex
	path    string // REQUEST_FILENAME regex
	fields  []string
}{
	{"^(?:POST|PUT)$", "^/api/articles(?:/[a-z0-9-]+)?$", []string{"json.article.title", "json.article.description", "json.article.body"}},
	{"^POST$", "^/api/articles/[a-z0-9-]+/comments$", []string{"json.comment.body"}},
	{"^PUT$", "^/api/user$", []string{"json.user.bio"}},
	{"^POST$", "^/editor(?:/[a-z0-9-]+)?$", []string{"title", "description", "body"}},
	{"^POST$", "^/article/[a-z0-9-]+(?:/comments)?$", []string{"body"}}, // the comment form posts to its article's address
	{"^POST$", "^/settings$", []string{"bio"}},
}

// contentAttackTags are the CRS tags whose rules code samples set off.
var contentAttackTags = []string{
	"attack-sqli", "attack-xss", "attack-rce", "attack-injection-php", "attack-injection-generic", "attack-lfi",
}

// ContentRoute is a request that carries user-written text: a method and
// a path, regular expressions matched in full.
type ContentRoute struct{ Methods, Path string }

// ContentRoutes are the routes whose content fields the CRS exclusions
// cover; the AWS WAF in front (security.ContentWrites) must let the same
// routes through, and a test holds the two to the same requests.
func ContentRoutes() []ContentRoute {
	out := make([]ContentRoute, len(contentEndpoints))
	for i, e := range contentEndpoints {
		out[i] = ContentRoute{e.methods, e.path}
	}
	return out
}

// ContentFields are the argument names (as the CRS names them:
// "json.article.body", or a form field "body") that the exclusions take
// out of the attack rules for a request with method and path: the fields
// whose size the WAF does not pay for.
func ContentFields(method, path string) []string {
	var out []string
	for i, re := range compiledEndpoints() {
		if re[0].MatchString(method) && re[1].MatchString(path) {
			out = append(out, contentEndpoints[i].fields...)
		}
	}
	return out
}

// compiledEndpoints are contentEndpoints' method and path expressions.
var compiledEndpoints = sync.OnceValue(func() [][2]*regexp.Regexp {
	out := make([][2]*regexp.Regexp, len(contentEndpoints))
	for i, e := range contentEndpoints {
		out[i] = [2]*regexp.Regexp{regexp.MustCompile(e.methods), regexp.MustCompile(e.path)}
	}
	return out
})

// exclusions renders contentEndpoints as SecLang: for each endpoint, a
// chained rule whose ctl actions remove its fields from the tagged rules
// for that one transaction.
func exclusions() string {
	var b strings.Builder
	for i, e := range contentEndpoints {
		var ctls []string
		for _, f := range e.fields {
			for _, tag := range contentAttackTags {
				ctls = append(ctls, fmt.Sprintf("ctl:ruleRemoveTargetByTag=%s;ARGS:%s", tag, f))
			}
		}
		fmt.Fprintf(&b, "SecRule REQUEST_METHOD \"@rx %s\" \"id:%d,phase:2,pass,nolog,chain\"\n", e.methods, 10001+i)
		fmt.Fprintf(&b, "  SecRule REQUEST_FILENAME \"@rx %s\" \"t:none,%s\"\n", e.path, strings.Join(ctls, ","))
	}
	return b.String()
}

// requestRules are the CRS rule files the WAF runs: every request-phase
// file but the two whose attacks cannot reach this server — PHP injection
// (933) and Java deserialisation/injection (944): conduit is a Go binary on
// Linux that runs neither (measured: these two files were about a fifth of
// the WAF's CPU). The response files are left out too: response inspection
// is off.
var requestRules = []string{
	"REQUEST-901-INITIALIZATION.conf",
	"REQUEST-905-COMMON-EXCEPTIONS.conf",
	"REQUEST-911-METHOD-ENFORCEMENT.conf",
	"REQUEST-913-SCANNER-DETECTION.conf",
	"REQUEST-920-PROTOCOL-ENFORCEMENT.conf",
	"REQUEST-921-PROTOCOL-ATTACK.conf",
	"REQUEST-922-MULTIPART-ATTACK.conf",
	"REQUEST-930-APPLICATION-ATTACK-LFI.conf",
	"REQUEST-931-APPLICATION-ATTACK-RFI.conf",
	"REQUEST-932-APPLICATION-ATTACK-RCE.conf",
	"REQUEST-934-APPLICATION-ATTACK-GENERIC.conf",
	"REQUEST-941-APPLICATION-ATTACK-XSS.conf",
	"REQUEST-942-APPLICATION-ATTACK-SQLI.conf",
	"REQUEST-943-APPLICATION-ATTACK-SESSION-FIXATION.conf",
	"REQUEST-949-BLOCKING-EVALUATION.conf",
	"REQUEST-999-COMMON-EXCEPTIONS-AFTER.conf",
}

// jndiRule blocks Log4j's JNDI lookups (Log4Shell, CVE-2021-44228), as
// AWS WAF's known-bad-inputs group (its Log4JRCE rules: headers, the URI
// and query, the body) does in staging and prod, so that dev, whose only
// WAF is this one, is not kinder. The CRS's own rule (944150) is in the
// Java file this WAF leaves out for its cost (see requestRules); this is
// that rule's pattern — "${" (or its entity and escape spellings) then
// "jndi", or a nested "${" of a Log4j lookup (the obfuscations
// ${${lower:j}ndi:…}, ${${::-j}…}; the CRS's nests any "${", which blocks
// shell and JavaScript templates in articles) —
// on the request line, every argument (the JSON and form fields, the
// content fields included: AWS inspects bodies whole), cookies and
// headers, after URL, JS and HTML-entity decoding. It denies at once.
const jndiRule = `SecRule REQUEST_LINE|ARGS|ARGS_NAMES|REQUEST_COOKIES|REQUEST_COOKIES_NAMES|REQUEST_HEADERS "@rx (?i)(?:\$|&dollar;?)(?:\{|&l(?:brace|cub);?)(?:[^\}]{0,15}(?:\$|&dollar;?)(?:\{|&l(?:brace|cub);?)(?::|lower|upper|env|sys|date|main|java|base64|jndi|ctx|k8s|docker|web|bundle|log4j|spring|sd|event|marker|map)|jndi)" "id:10100,phase:2,deny,status:403,t:none,t:urlDecodeUni,t:jsDecode,t:htmlEntityDecode,log,msg:'Log4j JNDI lookup'"`

// setup is the CRS setup this server needs on top of crs-setup.conf.example.
const setup = `
SecAction "id:900000,phase:1,pass,nolog,t:none,setvar:tx.blocking_paranoia_level=1"
SecAction "id:900110,phase:1,pass,nolog,t:none,setvar:tx.inbound_anomaly_score_threshold=5,setvar:tx.outbound_anomaly_score_threshold=4"
# The API uses PUT and DELETE, which CRS does not allow by default.
SecAction "id:900200,phase:1,pass,nolog,t:none,setvar:'tx.allowed_methods=GET HEAD POST OPTIONS PUT DELETE'"
`

// WAF inspects requests.
type WAF struct {
	waf  coraza.WAF
	mode Mode
	// OnBlock, when set, is called with the id of the rule that blocked.
	OnBlock func(rule int)
}

// New loads the CRS with the given mode and body limit.
func New(mode Mode, bodyLimit int64) (*WAF, error) {
	if mode == Off {
		return &WAF{mode: Off}, nil
	}
	engine := "On"
	if mode == Detect {
		engine = "DetectionOnly"
	}
	var includes strings.Builder
	for _, f := range requestRules {
		fmt.Fprintf(&includes, "Include @owasp_crs/%s\n", f)
	}
	directives := fmt.Sprintf(`
Include @coraza.conf-recommended
SecRuleEngine %s
SecRequestBodyLimit %d
SecRequestBodyInMemoryLimit %d
SecRequestBodyLimitAction Reject
SecResponseBodyAccess Off
# Blocks are logged by the server itself (with the request id), not by
# Coraza's audit log.
SecAuditEngine Off
Include @crs-setup.conf.example
%s
%s
%s
# The dev stack is reached by its Elastic IP and local mode by 127.0.0.1:
# a numeric Host header is this deployment's normal case, not an attack.
SecRuleRemoveById 920350
%s
`, engine, bodyLimit, bodyLimit, setup, exclusions(), includes.String(), jndiRule)
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(directives))
	if err != nil {
		return nil, fmt.Errorf("load OWASP CRS: %w", err)
	}
	return &WAF{waf: w, mode: mode}, nil
}

// Verdict is the outcome of inspecting one request.
type Verdict struct {
	Blocked bool
	Status  int
	RuleID  int
	Matched []int // ids of the detection rules that matched (that score), for logs
}

// Inspect runs phases 1 and 2 on r. The body is read and put back, so the
// next handler sees it unchanged.
func (w *WAF) Inspect(r *http.Request, id string) (Verdict, error) {
	if w.mode == Off {
		return Verdict{}, nil
	}
	tx := w.waf.NewTransactionWithID(id)
	defer func() { _ = tx.Close() }()
	clientIP, clientPort := splitHostPort(r.RemoteAddr)
	tx.ProcessConnection(clientIP, clientPort, "", 0)
	tx.ProcessURI(r.URL.RequestURI(), r.Method, r.Proto)
	for k, vs := range r.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	if r.ContentLength > 0 { // Go moves Content-Length out of the header map
		tx.AddRequestHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	if r.Host != "" {
		tx.AddRequestHeader("Host", r.Host)
		tx.SetServerName(r.Host)
	}
	if it := tx.ProcessRequestHeaders(); it != nil {
		return w.verdict(tx, it), nil
	}
	if r.Body != nil && r.Body != http.NoBody && tx.IsRequestBodyAccessible() {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return Verdict{}, fmt.Errorf("read body: %w", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if it, _, err := tx.WriteRequestBody(body); err != nil {
			return Verdict{}, fmt.Errorf("waf body: %w", err)
		} else if it != nil {
			return w.verdict(tx, it), nil
		}
	}
	it, err := tx.ProcessRequestBody()
	if err != nil {
		return Verdict{}, fmt.Errorf("waf body: %w", err)
	}
	return w.verdict(tx, it), nil
}

func (w *WAF) verdict(tx types.Transaction, it *types.Interruption) Verdict {
	v := Verdict{}
	for _, m := range tx.MatchedRules() {
		// CRS detection rules live in 911000-948999 and say what they
		// found (a message); the rest is setup, bookkeeping, the
		// paranoia-level markers that skip rules above the configured
		// level, and the blocking evaluation itself.
		if id := m.Rule().ID(); id >= 911000 && id < 949000 && m.Message() != "" {
			v.Matched = append(v.Matched, id)
		}
	}
	if it == nil {
		return v
	}
	v.Blocked, v.Status, v.RuleID = true, it.Status, it.RuleID
	if v.Status == 0 {
		v.Status = http.StatusForbidden
	}
	if w.OnBlock != nil {
		w.OnBlock(it.RuleID)
	}
	return v
}

func splitHostPort(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}
