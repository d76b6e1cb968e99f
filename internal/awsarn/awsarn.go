// Package awsarn says what an AWS ARN of a kind looks like. It is a leaf
// with no dependencies: the stack's configuration checks the ARNs a person
// enters with it, and the app checks the ARNs it is given (CONDUIT_*) with
// the same rules.
package awsarn

import "regexp"

// Shapes from AWS's documentation (IAM User Guide, "Amazon Resource Names"):
// arn:partition:service:region:account-id:resource. Secrets Manager names
// are letters, digits and /_+=.@- (Secrets Manager User Guide, "Name"
// constraints), and the ARN ends with a six-character suffix after a dash,
// which the rule leaves to AWS; the `!` is for the secrets RDS and
// DocumentDB manage (rds!cluster-…).
var (
	secretRE      = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@!-]+$`)
	certificateRE = regexp.MustCompile(`^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$`)
)

// IsSecret reports whether s is a Secrets Manager secret's ARN.
func IsSecret(s string) bool { return secretRE.MatchString(s) }

// IsCertificate reports whether s is an ACM certificate's ARN.
func IsCertificate(s string) bool { return certificateRE.MatchString(s) }
