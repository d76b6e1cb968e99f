package twin

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"webstack/internal/offline/plan"
)

// Metadata are an instance's IMDS options (its launch template's).
type Metadata struct {
	TokensRequired bool // httpTokens = required: IMDSv2 only
	HopLimit       int  // httpPutResponseHopLimit
}

// World is the AWS side of a stack, as the plan declares it: what the
// stand-ins serve, and to whom.
type World struct {
	Region  string
	Release Release
	// Secrets are the Secrets Manager secrets the plan names, by ARN.
	JWTSecretARN string
	DB           Database
	// WebTLS are the certificate secrets web instances serve HTTPS with.
	WebTLS []WebTLS
	// Policies are each role's identity policies (inline and attached
	// documents the plan holds), by role name.
	Policies map[string][]Policy
}

// WebTLS is a web instance's certificate secret.
type WebTLS struct {
	SecretARN string
	Host      string // the instance serving it
}

// Release is the build object in S3.
type Release struct {
	Bucket, Key string
	Path        string // the local file the plan uploads
	SHA256      string
}

// Database is the DocumentDB cluster the api uses.
type Database struct {
	Host, ReaderHost string
	Port             int
	Username         string
	SecretARN        string // the cluster's managed master-user secret
}

// Policy is an IAM policy document (the part the twin evaluates).
type Policy struct {
	Statement []Statement
}

// Statement is one statement of a policy.
type Statement struct {
	Effect   string
	Action   stringList
	Resource stringList
}

// stringList is IAM's "a string or a list of strings".
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*l = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

// Allows reports whether role's policies allow action on resource: an
// explicit Deny wins, else any Allow, else the implicit deny.
func (w World) Allows(role, action, resource string) bool {
	allowed := false
	for _, p := range w.Policies[role] {
		for _, s := range p.Statement {
			if !slices.ContainsFunc(s.Action, func(a string) bool { return globMatch(strings.ToLower(a), strings.ToLower(action)) }) ||
				!slices.ContainsFunc(s.Resource, func(r string) bool { return globMatch(r, resource) }) {
				continue
			}
			if s.Effect == "Deny" {
				return false
			}
			allowed = allowed || s.Effect == "Allow"
		}
	}
	return allowed
}

// globMatch is IAM's wildcard match: * any run, ? one character.
func globMatch(pattern, s string) bool {
	// path.Match treats / specially; IAM does not.
	p := strings.NewReplacer("/", "\x00").Replace(pattern)
	v := strings.NewReplacer("/", "\x00").Replace(s)
	ok, err := path.Match(strings.NewReplacer("[", "\\[", "\\", "\\\\").Replace(p), v)
	return err == nil && ok
}

// world reads the stack's AWS side from the plan.
func world(g *plan.Graph) (World, error) {
	w := World{Policies: map[string][]Policy{}}
	objs := g.OfType("aws:s3/bucketObjectv2:BucketObjectv2")
	if len(objs) != 1 {
		return w, fmt.Errorf("twin: want one release object in the plan, found %d", len(objs))
	}
	o := objs[0].Inputs
	w.Release = Release{Bucket: fmt.Sprint(o["bucket"]), Key: fmt.Sprint(o["key"]),
		Path: fmt.Sprint(plan.Get(o, "source", "asset", "path")), SHA256: fmt.Sprint(plan.Get(o, "metadata", "sha256"))}
	w.JWTSecretARN = fmt.Sprint(g.Outputs["jwtSecretArn"])
	// The region the program deploys to, as its ARNs say.
	if parts := strings.Split(w.JWTSecretARN, ":"); len(parts) > 3 {
		w.Region = parts[3]
	}
	if w.Region == "" {
		return w, fmt.Errorf("twin: no region in the JWT secret's ARN %q", w.JWTSecretARN)
	}
	for _, c := range g.OfType("aws:docdb/cluster:Cluster") {
		w.DB = Database{Host: fmt.Sprint(c.Outputs["endpoint"]), ReaderHost: fmt.Sprint(c.Outputs["readerEndpoint"]),
			Port: int(plan.Number(c.Outputs["port"])), Username: fmt.Sprint(c.Inputs["masterUsername"]),
			SecretARN: fmt.Sprint(plan.Get(c.Outputs, "masterUserSecrets", 0, "secretArn"))}
	}
	for _, r := range g.OfType("aws:iam/rolePolicy:RolePolicy") {
		var p Policy
		if err := json.Unmarshal([]byte(fmt.Sprint(r.Inputs["policy"])), &p); err != nil {
			return w, fmt.Errorf("twin: policy %s: %w", r.Name, err)
		}
		role := fmt.Sprint(r.Inputs["role"])
		w.Policies[role] = append(w.Policies[role], p)
	}
	return w, nil
}

// instance fills in what host h (an instance of resource r, launched from
// template lt) boots with: its user data (the instance's own, else the
// template's), its instance profile's role and its IMDS options.
func instance(g *plan.Graph, h *Host, r, lt plan.Resource) error {
	b, err := UserData(r)
	if err != nil {
		if b, err = UserData(lt); err != nil {
			return err
		}
	}
	h.Boot = &b
	profile := fmt.Sprint(plan.Get(lt.Inputs, "iamInstanceProfile", "name"))
	for _, p := range g.OfType("aws:iam/instanceProfile:InstanceProfile") {
		if p.ID == profile || p.Outputs["arn"] == plan.Get(lt.Inputs, "iamInstanceProfile", "arn") {
			h.Role = fmt.Sprint(p.Inputs["role"])
		}
	}
	if h.Role == "" {
		return fmt.Errorf("twin: %s (%s) has no instance profile the plan knows", h.Name, lt.Key())
	}
	h.Metadata = Metadata{
		TokensRequired: plan.Get(lt.Inputs, "metadataOptions", "httpTokens") == "required",
		HopLimit:       int(plan.Number(plan.Get(lt.Inputs, "metadataOptions", "httpPutResponseHopLimit"))),
	}
	if h.Metadata.HopLimit == 0 {
		h.Metadata.HopLimit = 1 // EC2's default
	}
	return nil
}
