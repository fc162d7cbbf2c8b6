// Package policy parses AWS IAM policy documents and evaluates requests
// against them with AWS's evaluation logic. One evaluator serves identity
// policies, repository and registry policies, KMS key policies and VPC
// endpoint policies (SPEC PERM, POL, EPOL, KMS, section 2 "PERM / POL /
// EPOL"). It does no I/O and imports only the standard library.
//
// # What it trusts
//
// Nothing in a document: policies come from API callers and are untrusted
// input. The Request is trusted: the caller (the decision point behind
// auth.Authorizer) fills in the authenticated principal, the action, the
// resource ARN and the condition keys it observed (aws:SourceIp,
// aws:SourceVpce, kms:ViaService, kms:EncryptionContext:*, ...).
//
// # What it guarantees
//
//   - Strict parsing. Unknown and duplicate elements, wrong JSON types,
//     unknown condition operators, malformed actions, ARNs, principals,
//     CIDRs, dates, numbers and policy variables are rejected with an
//     *Error naming the element ("Statement[1].Effect: must be "Allow" or
//     "Deny""), which wraps ErrMalformed. Documents are at most MaxSize
//     bytes, valid UTF-8, and nested at most 8 levels.
//   - Bounded time. Every pattern is compiled at Parse. Wildcard matching
//     is a two-pointer glob, O(len(pattern) x len(input)) at worst with no
//     exponential backtracking; a value holds at most 16 policy variables,
//     each substituted once per match. Evaluate does not allocate on the
//     common paths.
//   - A parsed Policy is immutable and safe for concurrent use; JSON
//     returns the document exactly as written.
//
// # Evaluation
//
// A statement applies to a request when its Action (or NotAction), its
// principal (Principal, NotPrincipal, or the identity itself), its
// Resource (or NotResource) and every condition match. Policy.Evaluate
// returns Deny if any Deny statement applies, else Allow if any Allow
// statement applies, else NoMatch. Decide combines policies:
//
//  1. An explicit Deny in any identity, resource-based or gate policy
//     denies.
//  2. Each Gate (VPC endpoint policies; a KMS key policy) must contain an
//     applicable Allow.
//  3. A principal of the resource's account needs an Allow from an
//     identity-based policy, or from a resource-based policy that names it
//     directly (a statement naming only its account delegates to IAM). The
//     account root user is implicitly allowed by identity evaluation.
//  4. A principal of another account needs both an identity-based Allow and
//     a resource-based Allow.
//  5. Anonymous callers and AWS services need a resource-based Allow.
//  6. Anything else is an implicit deny.
//
// Denied decisions carry AWS's AccessDenied wording, e.g. "with an explicit
// deny in a VPC endpoint policy" or "because no identity-based policy
// allows the ecr:PutImage action", for auth.DeniedError.Reason.
//
// Managed returns the AWS managed policies Coffer ships as built-ins
// (AmazonEC2ContainerRegistryReadOnly, ...PowerUser, ...FullAccess,
// AdministratorAccess; SPEC 3.9).
package policy
