package awsarn_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"webstack/internal/awsarn"
)

func TestARNShapes(t *testing.T) {
	for _, tc := range []struct {
		arn                 string
		secret, certificate bool
	}{
		{"arn:aws:secretsmanager:us-east-1:123456789012:secret:webstack/dev/web-tls-AbCdEf", true, false},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-0a1b2c3d-AbCdEf", true, false},
		{"arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x-AbCdEf", true, false},
		{"arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1234-5678-9abc-def012345678", false, true},
		{"arn:aws:secretsmanager:us-east-1:12345678901:secret:short-account", false, false},
		{"arn:aws:secretsmanager:us-east-1:123456789012:secret:", false, false},
		{"arn:aws:s3:::bucket", false, false},
		{"arn:aws:acm:us-east-1:123456789012:certificate/a b", false, false},
		{"webstack/dev/web-tls", false, false},
		{"", false, false},
	} {
		assert.Equal(t, tc.secret, awsarn.IsSecret(tc.arn), "secret %q", tc.arn)
		assert.Equal(t, tc.certificate, awsarn.IsCertificate(tc.arn), "certificate %q", tc.arn)
	}
}
