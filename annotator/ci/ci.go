// Package ci reads what a CI system says about the running pipeline from
// its environment variables (GitHub Actions, GitLab CI, Jenkins, or none),
// so `annotator deploy` needs no flags beyond -service in a pipeline.
//
// Promises: Detect is pure (it only calls the getenv it is given); RunKey is
// stable for one CI run and changes for a new run, so deploy ids derived
// from it make a retried CI step idempotent; DeployID returns an id that
// fits the deploy API's id rules ([A-Za-z0-9._:-], at most 128 bytes).
package ci

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Info is what the environment tells about the pipeline. Empty fields are
// unknown.
type Info struct {
	// Provider is "github", "gitlab", "jenkins" or "" (no CI detected).
	Provider string
	// RunKey identifies this run (e.g. "gh-123456-1": run id and attempt).
	RunKey string
	Commit string
	Who    string
	// Link points at the pipeline run.
	Link string
	// Ref is the branch or tag name; Tag is set when building a tag.
	Ref, Tag string
	Env      string
	Message  string
}

// Detect reads the CI environment through getenv (os.Getenv in main).
func Detect(getenv func(string) string) Info {
	var i Info
	switch {
	case getenv("GITHUB_ACTIONS") == "true" || getenv("GITHUB_RUN_ID") != "":
		i.Provider = "github"
		i.Commit = getenv("GITHUB_SHA")
		i.Who = first(getenv("GITHUB_ACTOR"), getenv("GITHUB_TRIGGERING_ACTOR"))
		i.Ref = getenv("GITHUB_REF_NAME")
		if getenv("GITHUB_REF_TYPE") == "tag" {
			i.Tag = i.Ref
		}
		if run := getenv("GITHUB_RUN_ID"); run != "" {
			i.RunKey = "gh-" + run + "-" + first(getenv("GITHUB_RUN_ATTEMPT"), "1")
			if server, repo := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_REPOSITORY"); repo != "" {
				i.Link = strings.TrimRight(first(server, "https://github.com"), "/") + "/" + repo + "/actions/runs/" + run
			}
		}
	case getenv("GITLAB_CI") == "true" || getenv("CI_PIPELINE_ID") != "":
		i.Provider = "gitlab"
		i.Commit = getenv("CI_COMMIT_SHA")
		i.Who = first(getenv("GITLAB_USER_LOGIN"), getenv("GITLAB_USER_NAME"))
		i.Link = first(getenv("CI_PIPELINE_URL"), getenv("CI_JOB_URL"))
		i.Ref = getenv("CI_COMMIT_REF_NAME")
		i.Tag = getenv("CI_COMMIT_TAG")
		i.Env = getenv("CI_ENVIRONMENT_NAME")
		i.Message = getenv("CI_COMMIT_TITLE")
		if p := getenv("CI_PIPELINE_ID"); p != "" {
			// A retried job gets a new CI_JOB_ID: a new deploy attempt.
			i.RunKey = "gl-" + p + "-" + first(getenv("CI_JOB_ID"), "0")
		}
	case getenv("JENKINS_URL") != "" || getenv("BUILD_URL") != "" && getenv("BUILD_TAG") != "":
		i.Provider = "jenkins"
		i.Commit = getenv("GIT_COMMIT")
		i.Who = getenv("BUILD_USER_ID") // set by the build-user-vars plugin
		i.Link = getenv("BUILD_URL")
		i.Ref = strings.TrimPrefix(getenv("GIT_BRANCH"), "origin/")
		if tag := getenv("BUILD_TAG"); tag != "" {
			i.RunKey = "jk-" + tag
		}
	}
	if i.Who == "" {
		i.Who = first(getenv("USER"), getenv("LOGNAME"), getenv("USERNAME"))
	}
	return i
}

// Version is the default deploy version: the tag when building one, else
// "<ref>@<short commit>", else whichever of the two is known.
func (i Info) Version() string {
	short := i.Commit
	if len(short) > 12 {
		short = short[:12]
	}
	switch {
	case i.Tag != "":
		return i.Tag
	case i.Ref != "" && short != "":
		return i.Ref + "@" + short
	}
	return first(i.Ref, short)
}

// DeployID returns a deploy id stable for this run, service and env, or ""
// outside CI.
func (i Info) DeployID(service, env string) string {
	if i.RunKey == "" {
		return ""
	}
	id := i.RunKey + "-" + service
	if env != "" {
		id += "-" + env
	}
	return SanitizeID(id)
}

// SanitizeID maps s onto the deploy id charset [A-Za-z0-9._:-] and, when
// longer than 128 bytes, keeps a prefix and a hash of the whole.
func SanitizeID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':') {
			b[i] = '_'
		}
	}
	const max = 128
	if len(b) <= max {
		return string(b)
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:8])
	return string(b[:max-len(h)-1]) + "-" + h
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
