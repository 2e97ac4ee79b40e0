// Package infra holds dvrouter's Azure deployment: the Bicep template (main.bicep and
// modules/), a parameters file per environment, and the offline checkers check-bicep.mjs
// (syntax) and check-models.mjs (keys and enum values against Azure's SDK resource models).
//
// There is no Go code here. The tests in this folder check the template without a Bicep
// compiler: every file parses with the tree-sitter Bicep grammar, the security rules hold
// (no keys, SAS or listKeys, hardening flags set, roles granted on specific resources), every
// app setting the program reads is set, and scripts/package.sh produces a package a Functions
// host can start.
package infra
