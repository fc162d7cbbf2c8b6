package policy

import (
	"slices"
	"strings"
	"sync"
)

// ManagedPolicy is an AWS managed policy built into Coffer.
type ManagedPolicy struct {
	Name   string // e.g. "AmazonEC2ContainerRegistryReadOnly"
	ARN    string // arn:aws:iam::aws:policy/<Name>
	Policy *Policy
}

// managedARNPrefix is the ARN form of AWS managed policies (SPEC 3.8).
const managedARNPrefix = "arn:aws:iam::aws:policy/"

// The documents below are the AWS-published texts (AWS Managed Policy
// Reference; SPEC 3.9 gives the action lists), formatted as AWS serves
// them, so GetPolicyVersion-style APIs can return them verbatim.
var managedDocs = []struct{ name, doc string }{
	// ReadOnly (v3): the twelve read actions of SPEC 3.9 on "*":
	// GetAuthorizationToken, BatchCheckLayerAvailability,
	// GetDownloadUrlForLayer, GetRepositoryPolicy, DescribeRepositories,
	// ListImages, DescribeImages, BatchGetImage, GetLifecyclePolicy,
	// GetLifecyclePolicyPreview, ListTagsForResource,
	// DescribeImageScanFindings.
	{"AmazonEC2ContainerRegistryReadOnly", `{
  "Version" : "2012-10-17",
  "Statement" : [
    {
      "Effect" : "Allow",
      "Action" : [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetRepositoryPolicy",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
        "ecr:DescribeImages",
        "ecr:BatchGetImage",
        "ecr:GetLifecyclePolicy",
        "ecr:GetLifecyclePolicyPreview",
        "ecr:ListTagsForResource",
        "ecr:DescribeImageScanFindings"
      ],
      "Resource" : "*"
    }
  ]
}`},
	// PowerUser (v3): the ReadOnly actions plus the push actions
	// InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, PutImage.
	// No repository deletion, no policy changes.
	{"AmazonEC2ContainerRegistryPowerUser", `{
  "Version" : "2012-10-17",
  "Statement" : [
    {
      "Effect" : "Allow",
      "Action" : [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetRepositoryPolicy",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
        "ecr:DescribeImages",
        "ecr:BatchGetImage",
        "ecr:GetLifecyclePolicy",
        "ecr:GetLifecyclePolicyPreview",
        "ecr:ListTagsForResource",
        "ecr:DescribeImageScanFindings",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage"
      ],
      "Resource" : "*"
    }
  ]
}`},
	// FullAccess: ecr:* and cloudtrail:LookupEvents on "*", plus
	// iam:CreateServiceLinkedRole for replication.ecr.amazonaws.com only
	// (the text the ECR User Guide publishes; AWS has since revised the
	// service-linked-role statement, which Coffer has no use for).
	{"AmazonEC2ContainerRegistryFullAccess", `{
  "Version" : "2012-10-17",
  "Statement" : [
    {
      "Effect" : "Allow",
      "Action" : [
        "ecr:*",
        "cloudtrail:LookupEvents"
      ],
      "Resource" : "*"
    },
    {
      "Effect" : "Allow",
      "Action" : [
        "iam:CreateServiceLinkedRole"
      ],
      "Resource" : "*",
      "Condition" : {
        "StringEquals" : {
          "iam:AWSServiceName" : [
            "replication.ecr.amazonaws.com"
          ]
        }
      }
    }
  ]
}`},
	// AdministratorAccess: every action on every resource.
	{"AdministratorAccess", `{
  "Version" : "2012-10-17",
  "Statement" : [
    {
      "Effect" : "Allow",
      "Action" : "*",
      "Resource" : "*"
    }
  ]
}`},
}

// defaultEndpointDoc is the policy AWS attaches to an interface endpoint
// created without one (SPEC EPOL-02: full access to the service).
const defaultEndpointDoc = `{
  "Statement": [
    {
      "Action": "*",
      "Effect": "Allow",
      "Principal": "*",
      "Resource": "*"
    }
  ]
}`

var builtins = sync.OnceValues(func() ([]ManagedPolicy, *Policy) {
	out := make([]ManagedPolicy, 0, len(managedDocs))
	for _, m := range managedDocs {
		p, err := Parse([]byte(m.doc), Identity)
		if err != nil {
			panic("policy: built-in managed policy " + m.name + ": " + err.Error())
		}
		out = append(out, ManagedPolicy{Name: m.name, ARN: managedARNPrefix + m.name, Policy: p})
	}
	slices.SortFunc(out, func(a, b ManagedPolicy) int { return strings.Compare(a.Name, b.Name) })
	ep, err := Parse([]byte(defaultEndpointDoc), Endpoint)
	if err != nil {
		panic("policy: default endpoint policy: " + err.Error())
	}
	return out, ep
})

// Managed returns the built-in AWS managed policy with the given name or
// ARN ("AmazonEC2ContainerRegistryReadOnly" or
// "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly").
func Managed(name string) (*Policy, bool) {
	name = strings.TrimPrefix(name, managedARNPrefix)
	all, _ := builtins()
	for _, m := range all {
		if m.Name == name {
			return m.Policy, true
		}
	}
	return nil, false
}

// ManagedPolicies returns every built-in managed policy, sorted by name.
func ManagedPolicies() []ManagedPolicy {
	all, _ := builtins()
	return slices.Clone(all)
}

// DefaultEndpointPolicy returns the policy of an endpoint created without
// one: allow every action on every resource to every principal.
func DefaultEndpointPolicy() *Policy {
	_, ep := builtins()
	return ep
}
