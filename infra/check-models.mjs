#!/usr/bin/env node
// Offline model check for the Bicep files under infra/: every key of every resource body, and
// every literal enum value, checked against Azure's own resource models.
//
// Bicep's resource types and Azure's management SDK for JavaScript are both generated from the
// REST API specifications (github.com/Azure/azure-rest-api-specs). The SDK packages
// (@azure/arm-appservice, @azure/arm-storage, ...) ship those models as TypeScript
// declarations (.d.ts), plus the JavaScript that maps each client-side name to its wire name
// (the name Bicep and the REST API use): TypeSpec-generated packages in their
// xxxSerializer/xxxDeserializer functions, AutoRest-generated ones in their `mappers`. Both
// are read here with the typescript compiler API (ts.createSourceFile); nothing is executed.
// The SDK flattens a resource's `properties` bag into its top-level interface; the mappers say
// which members came from there, so a key at the wrong depth is caught too.
//
// The Bicep side is parsed with tree-sitter-bicep (as check-bicep.mjs does). For each
// `resource` declaration it checks, recursively, each object key against the model of that
// resource type, each literal string against the model's enum (a string-literal union, or the
// KnownXxx enum of an extensible one), and that an object, an array, a string, a number or a
// bool is given where the model wants one. Values it cannot evaluate (parameters, function
// calls other than union(), interpolations) are skipped, not guessed: the check has no false
// alarms by design, and what it cannot see `az bicep build` and a dev deployment still do.
//
// Usage: node infra/check-models.mjs [--verbose] [file-or-directory ...]
//   With no arguments it checks every .bicep file under infra/.
//   Prints file:line:col: message for each finding and exits 1; exits 0 when there are none.
//   --verbose also prints, per resource type, the SDK model and API version it was checked with.

import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { bicepFiles } from './bicep-files.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const require = createRequire(join(root, 'package.json'));

let ts, Parser, Language;
try {
  ts = require('typescript');
  ({ Parser, Language } = await import('web-tree-sitter'));
} catch {
  console.error('check-models: typescript or web-tree-sitter is not installed; run `npm ci` at the repository root');
  process.exit(2);
}

// Resource type -> SDK package, model interface and the API version that model describes.
// `byName` picks the model by the resource's name (sites/config holds unrelated documents).
// `sdkApi` is checked against the package's own files below, so a package upgrade that changes
// it is noticed. Where the SDK is older than the API version the Bicep uses, `newer` lists the
// keys that API version added, with the page they come from; they are checked by name and, for
// enums, value.
const RESOURCE_MODELS = {
  'Microsoft.Web/serverfarms': { pkg: '@azure/arm-appservice', model: 'AppServicePlan', sdkApi: '2025-05-01' },
  'Microsoft.Web/sites': { pkg: '@azure/arm-appservice', model: 'Site', sdkApi: '2025-05-01' },
  'Microsoft.Web/sites/config': {
    pkg: '@azure/arm-appservice', sdkApi: '2025-05-01',
    byName: {
      appsettings: 'StringDictionary',
      metadata: 'StringDictionary',
      connectionstrings: 'ConnectionStringDictionary',
      authsettingsV2: 'SiteAuthSettingsV2',
      authsettings: 'SiteAuthSettings',
      web: 'SiteConfigResource',
      logs: 'SiteLogsConfig',
      slotConfigNames: 'SlotConfigNamesResource',
    },
  },
  'Microsoft.Web/sites/basicPublishingCredentialsPolicies': { pkg: '@azure/arm-appservice', model: 'CsmPublishingCredentialsPoliciesEntity', sdkApi: '2025-05-01' },
  'Microsoft.Storage/storageAccounts': { pkg: '@azure/arm-storage', model: 'StorageAccountCreateParameters', sdkApi: '2026-06-01' },
  'Microsoft.Storage/storageAccounts/blobServices': { pkg: '@azure/arm-storage', model: 'BlobServiceProperties', sdkApi: '2026-06-01' },
  'Microsoft.Storage/storageAccounts/blobServices/containers': { pkg: '@azure/arm-storage', model: 'BlobContainer', sdkApi: '2026-06-01' },
  'Microsoft.Storage/storageAccounts/tableServices': { pkg: '@azure/arm-storage', model: 'TableServiceProperties', sdkApi: '2026-06-01' },
  'Microsoft.Storage/storageAccounts/tableServices/tables': { pkg: '@azure/arm-storage', model: 'Table', sdkApi: '2026-06-01' },
  'Microsoft.Storage/storageAccounts/queueServices': { pkg: '@azure/arm-storage', model: 'QueueServiceProperties', sdkApi: '2026-06-01' },
  'Microsoft.Storage/storageAccounts/queueServices/queues': { pkg: '@azure/arm-storage', model: 'StorageQueue', sdkApi: '2026-06-01' },
  'Microsoft.ServiceBus/namespaces': {
    pkg: '@azure/arm-servicebus', model: 'SBNamespace', sdkApi: '2021-11-01',
    // The newest @azure/arm-servicebus (6.1.0) models 2021-11-01. What later versions added,
    // from the API version change log of the template reference:
    newer: {
      source: 'https://learn.microsoft.com/azure/templates/microsoft.servicebus/change-log/namespaces',
      properties: {
        minimumTlsVersion: { since: '2022-01-01-preview', values: ['1.0', '1.1', '1.2'] },
        publicNetworkAccess: { since: '2022-01-01-preview', values: ['Disabled', 'Enabled', 'SecuredByPerimeter'] },
        premiumMessagingPartitions: { since: '2022-10-01-preview', kind: 'number' },
      },
    },
  },
  'Microsoft.ServiceBus/namespaces/queues': {
    pkg: '@azure/arm-servicebus', model: 'SBQueue', sdkApi: '2021-11-01',
    // The change log lists no queue property added or removed after 2021-11-01.
    newer: { source: 'https://learn.microsoft.com/azure/templates/microsoft.servicebus/change-log/namespaces/queues', properties: {} },
  },
  'Microsoft.KeyVault/vaults': { pkg: '@azure/arm-keyvault', model: 'VaultCreateOrUpdateParameters', sdkApi: '2026-02-01' },
  'Microsoft.KeyVault/vaults/secrets': { pkg: '@azure/arm-keyvault', model: 'SecretCreateOrUpdateParameters', sdkApi: '2026-02-01' },
  'Microsoft.Authorization/roleAssignments': { pkg: '@azure/arm-authorization', model: 'RoleAssignmentCreateParameters', sdkApi: '2022-04-01' },
  'Microsoft.ManagedIdentity/userAssignedIdentities': { pkg: '@azure/arm-msi', model: 'Identity', sdkApi: '2024-11-30' },
  'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials': { pkg: '@azure/arm-msi', model: 'FederatedIdentityCredential', sdkApi: '2024-11-30' },
  'Microsoft.Insights/workbooks': {
    pkg: '@azure/arm-appinsights', model: 'Workbook', sdkApi: '2021-08-01',
    // The SDK's Workbook drops the tracked-resource keys (its own properties.tags, a list of
    // strings, shadows them), while the REST API and Bicep's type have both: location (required)
    // and tags beside properties
    // (https://learn.microsoft.com/azure/templates/microsoft.insights/2021-08-01/workbooks).
    top: { location: { kind: 'string' }, tags: { kind: 'map', of: { kind: 'string' } } },
  },
  'Microsoft.Insights/components': {
    pkg: '@azure/arm-appinsights', model: 'ApplicationInsightsComponent', sdkApi: '2018-05-01-preview',
    // @azure/arm-appinsights 4.0.0 models components at 2018-05-01-preview. What 2020-02-02
    // (via 2020-02-02-preview) added and removed, from the API version change log:
    newer: {
      source: 'https://learn.microsoft.com/azure/templates/microsoft.insights/change-log/components',
      properties: {
        WorkspaceResourceId: { since: '2020-02-02-preview', kind: 'string' },
        DisableLocalAuth: { since: '2020-02-02-preview', kind: 'boolean' },
        ForceCustomerStorageForProfiler: { since: '2020-02-02-preview', kind: 'boolean' },
      },
      removed: { RetentionInDays: '2020-02-02-preview' },
    },
  },
  'Microsoft.OperationalInsights/workspaces': { pkg: '@azure/arm-operationalinsights', model: 'Workspace', sdkApi: '2025-07-01' },
  'Microsoft.Insights/actionGroups': { pkg: '@azure/arm-monitor', model: 'ActionGroupResource', sdkApi: '2024-10-01-preview' },
  'Microsoft.Insights/scheduledQueryRules': { pkg: '@azure/arm-monitor', model: 'ScheduledQueryRuleResource', sdkApi: '2025-01-01-preview' },
  'Microsoft.Insights/metricAlerts': { pkg: '@azure/arm-monitor', model: 'MetricAlertResource', sdkApi: '2026-01-01' },
  'Microsoft.Insights/diagnosticSettings': { pkg: '@azure/arm-monitor', model: 'DiagnosticSettingsResource', sdkApi: '2021-05-01-preview' },
  'Microsoft.Network/virtualNetworks': { pkg: '@azure/arm-network', model: 'VirtualNetwork', sdkApi: '2026-01-01' },
  'Microsoft.Network/privateEndpoints': { pkg: '@azure/arm-network', model: 'PrivateEndpoint', sdkApi: '2026-01-01' },
  'Microsoft.Network/privateEndpoints/privateDnsZoneGroups': { pkg: '@azure/arm-network', model: 'PrivateDnsZoneGroup', sdkApi: '2026-01-01' },
  'Microsoft.Network/privateDnsZones': { pkg: '@azure/arm-privatedns', model: 'PrivateZone', sdkApi: '2024-06-01' },
  'Microsoft.Network/privateDnsZones/virtualNetworkLinks': { pkg: '@azure/arm-privatedns', model: 'VirtualNetworkLink', sdkApi: '2024-06-01' },
};

// Keys of a resource declaration that Bicep itself defines, whatever the type.
const BICEP_RESOURCE_KEYS = new Set(['name', 'parent', 'scope', 'dependsOn']);
// ARM's envelope: the only keys that may stand beside `properties` at a resource's top level.
const ENVELOPE = new Set(['name', 'location', 'tags', 'kind', 'sku', 'identity', 'zones', 'extendedLocation', 'plan', 'etag', 'managedBy', 'properties']);

// ---------------------------------------------------------------------------------------------
// SDK models

const packages = new Map();

function files(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    if (name === 'node_modules' || name === 'browser' || name === 'react-native') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else out.push(p);
  }
  return out;
}

// loadPackage parses one SDK package: interfaces, type aliases and enums from its .d.ts
// files; serializer and deserializer functions and AutoRest mappers from its .js files.
function loadPackage(name) {
  if (packages.has(name)) return packages.get(name);
  const dir = join(root, 'node_modules', ...name.split('/'));
  if (!existsSync(join(dir, 'package.json'))) {
    console.error(`check-models: ${name} is not installed; run \`npm ci\` at the repository root`);
    process.exit(2);
  }
  const pkg = {
    name, dir, version: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version,
    interfaces: new Map(), aliases: new Map(), enums: new Map(), functions: new Map(), mappers: new Map(), js: [],
  };
  const all = files(dir);
  // One flavour of build is enough (commonjs, else esm); the others hold the same models.
  const flavour = all.some((f) => f.includes('/dist/commonjs/')) ? (f) => f.includes('/dist/commonjs/') || f.includes('/types/')
    : (f) => !relative(dir, f).startsWith('src/');
  for (const f of all.filter(flavour)) {
    if (f.endsWith('.d.ts')) readDeclarations(pkg, f);
    else if (f.endsWith('.js') && /models|mappers/i.test(f)) readJS(pkg, f);
  }
  packages.set(name, pkg);
  return pkg;
}

function hasModifier(node, kind) {
  return (ts.getModifiers?.(node) ?? node.modifiers ?? []).some((m) => m.kind === kind);
}

function readDeclarations(pkg, file) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  for (const st of sf.statements) {
    if (ts.isInterfaceDeclaration(st)) {
      const name = st.name.text;
      if (pkg.interfaces.has(name)) continue;
      const members = new Map();
      for (const m of st.members) {
        if (!ts.isPropertySignature(m) || !m.name) continue;
        const key = ts.isIdentifier(m.name) || ts.isStringLiteral(m.name) ? m.name.text : m.name.getText(sf);
        members.set(key, { type: m.type, readonly: hasModifier(m, ts.SyntaxKind.ReadonlyKeyword), sf });
      }
      const bases = [];
      for (const h of st.heritageClauses ?? []) for (const t of h.types) bases.push(t.expression.getText(sf));
      pkg.interfaces.set(name, { name, members, bases, sf });
    } else if (ts.isTypeAliasDeclaration(st)) {
      if (!pkg.aliases.has(st.name.text)) pkg.aliases.set(st.name.text, { type: st.type, sf });
    } else if (ts.isEnumDeclaration(st)) {
      const values = [];
      for (const m of st.members) if (m.initializer && ts.isStringLiteral(m.initializer)) values.push(m.initializer.text);
      if (!pkg.enums.has(st.name.text)) pkg.enums.set(st.name.text, values);
    }
  }
}

function readJS(pkg, file) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    if (ts.isFunctionDeclaration(node) && node.name && /(Serializer|Deserializer)$/.test(node.name.text)) {
      if (!pkg.functions.has(node.name.text)) pkg.functions.set(node.name.text, node);
      return;
    }
    // AutoRest mappers: `export const Name = { type: { name: "Composite", className, modelProperties } }`,
    // or in CommonJS builds `exports.Name = { ... }`.
    let mapperName, mapperValue;
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) {
      [mapperName, mapperValue] = [node.name.text, node.initializer];
    } else if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.EqualsToken &&
      ts.isPropertyAccessExpression(node.left) && ts.isIdentifier(node.left.expression) && node.left.expression.text === 'exports') {
      [mapperName, mapperValue] = [node.left.name.text, node.right];
    }
    if (mapperValue && ts.isObjectLiteralExpression(mapperValue)) {
      const type = prop(mapperValue, 'type');
      if (type && ts.isObjectLiteralExpression(type) && prop(type, 'modelProperties')) {
        if (!pkg.mappers.has(mapperName)) pkg.mappers.set(mapperName, type);
        return;
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}

function prop(obj, name) {
  for (const p of obj.properties) {
    if (ts.isPropertyAssignment(p) && (p.name.text === name || p.name.getText() === name)) return p.initializer;
  }
  return undefined;
}

// interfaceMembers returns an interface's members with those of its bases (client names).
function interfaceMembers(pkg, name, seen = new Set()) {
  const out = new Map();
  const i = pkg.interfaces.get(name);
  if (!i || seen.has(name)) return out;
  seen.add(name);
  for (const b of i.bases) for (const [k, v] of interfaceMembers(pkg, b, seen)) out.set(k, v);
  for (const [k, v] of i.members) out.set(k, v);
  return out;
}

const modelCache = new Map();
const unmapped = new Set();

// wireModel returns the wire-level shape of an SDK model: for each wire name, its client
// member (type, read-only), and whether it sits in the `properties` bag the SDK flattened.
function wireModel(pkg, name) {
  const cacheKey = `${pkg.name}:${name}`;
  if (modelCache.has(cacheKey)) return modelCache.get(cacheKey);
  const members = interfaceMembers(pkg, name);
  if (!members.size) return null;
  const model = { pkg, name, top: new Map(), props: null, open: members.has('additionalProperties') };
  modelCache.set(cacheKey, model);
  const add = (wire, client, bag) => {
    const m = members.get(client);
    if (!m) return;
    const entry = { wire, client, type: m.type, readonly: m.readonly, sf: m.sf };
    if (bag) (model.props ??= new Map()).set(wire, entry);
    else model.top.set(wire, entry);
  };
  const lc = name[0].toLowerCase() + name.slice(1);
  const de = pkg.functions.get(`${lc}Deserializer`);
  const se = pkg.functions.get(`${lc}Serializer`);
  const mapper = pkg.mappers.get(name);
  if (de || se) {
    // Deserializers name every member (read-only ones too): { client: item["wire"] }.
    // Serializers only the writable ones: { wire: item["client"] }.
    const fromFn = (fn, bag, isDe) => {
      const ret = returnedObject(fn);
      if (!ret) return;
      for (const p of ret.properties) {
        if (ts.isSpreadAssignment(p) || (ts.isPropertyAssignment(p) && keyOf(p) === 'properties' && !isDe)) {
          // The flattened bag: `...!item["properties"] ? ... : _xPropertiesDeserializer(item["properties"])`
          // or `properties: areAllPropsUndefined(...) ? undefined : _xPropertiesSerializer(item)`.
          const inner = calledFunction(pkg, p.kind === ts.SyntaxKind.SpreadAssignment ? p.expression : p.initializer, /^_\w+(Serializer|Deserializer)$/);
          if (inner) {
            fromFn(inner, true, isDe);
            continue;
          }
          if (ts.isSpreadAssignment(p)) continue;
        }
        if (!ts.isPropertyAssignment(p) && !ts.isShorthandPropertyAssignment(p)) continue;
        const key = keyOf(p);
        const access = firstItemAccess(p.initializer ?? p.name);
        if (isDe) add(access ?? key, key, bag);
        else add(key, access ?? key, bag);
      }
    };
    if (de) fromFn(de, false, true);
    if (se) fromFn(se, false, false);
  } else if (mapper) {
    for (const [client, serialized, readOnly] of mapperProperties(pkg, mapper)) {
      const parts = serialized.split(/(?<!\\)\./).map((s) => s.replace(/\\\./g, '.'));
      if (parts.length === 2 && parts[0] === 'properties') add(parts[1], client, true);
      else if (parts.length === 1) add(parts[0], client, false);
      if (readOnly && members.get(client)) members.get(client).readonly = true;
    }
  } else {
    // No wire-name map for this model: its client names are taken as the wire names.
    model.unmapped = true;
    unmapped.add(`${pkg.name} ${name}`);
    for (const k of members.keys()) add(k, k, false);
  }
  if (model.props && model.top.has('properties')) model.top.delete('properties');
  return model;
}

function keyOf(p) {
  const n = p.name;
  return ts.isIdentifier(n) || ts.isStringLiteral(n) ? n.text : n.getText();
}

function returnedObject(fn) {
  for (const st of fn.body?.statements ?? []) {
    if (ts.isReturnStatement(st) && st.expression) {
      let e = st.expression;
      while (ts.isParenthesizedExpression(e)) e = e.expression;
      if (ts.isObjectLiteralExpression(e)) return e;
    }
  }
  return null;
}

// firstItemAccess returns "x" for the first item["x"] in an expression.
function firstItemAccess(node) {
  let found;
  const visit = (n) => {
    if (found) return;
    if (ts.isElementAccessExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'item' && ts.isStringLiteral(n.argumentExpression)) {
      found = n.argumentExpression.text;
      return;
    }
    ts.forEachChild(n, visit);
  };
  if (node) visit(node);
  return found;
}

function calledFunction(pkg, node, pattern) {
  let found;
  const visit = (n) => {
    if (found) return;
    if (ts.isCallExpression(n) && ts.isIdentifier(n.expression) && pattern.test(n.expression.text)) {
      found = pkg.functions.get(n.expression.text);
      return;
    }
    ts.forEachChild(n, visit);
  };
  visit(node);
  return found;
}

// mapperProperties yields [clientName, serializedName, readOnly] of an AutoRest mapper,
// following `...Base.type.modelProperties` spreads and ES5 __assign(...) merges.
function* mapperProperties(pkg, type, seen = new Set()) {
  const mp = prop(type, 'modelProperties');
  const objects = [];
  const collect = (e) => {
    if (!e) return;
    if (ts.isObjectLiteralExpression(e)) objects.push(e);
    else if (ts.isCallExpression(e)) e.arguments.forEach(collect);
    else if (ts.isPropertyAccessExpression(e)) objects.push(e);
  };
  collect(mp);
  for (const o of objects) {
    if (ts.isPropertyAccessExpression(o)) {
      yield* baseMapper(pkg, o, seen);
      continue;
    }
    for (const p of o.properties) {
      if (ts.isSpreadAssignment(p)) {
        yield* baseMapper(pkg, p.expression, seen);
      } else if (ts.isPropertyAssignment(p) && ts.isObjectLiteralExpression(p.initializer)) {
        const sn = prop(p.initializer, 'serializedName');
        const ro = prop(p.initializer, 'readOnly');
        if (sn && ts.isStringLiteral(sn)) yield [keyOf(p), sn.text, ro?.kind === ts.SyntaxKind.TrueKeyword];
      }
    }
  }
}

function* baseMapper(pkg, expr, seen) {
  // Base.type.modelProperties, or exports.Base.type.modelProperties in CommonJS builds.
  const names = [];
  let e = expr;
  while (ts.isPropertyAccessExpression(e)) {
    names.unshift(e.name.text);
    e = e.expression;
  }
  if (!ts.isIdentifier(e)) return;
  const name = e.text === 'exports' ? names[0] : e.text;
  if (name && !seen.has(name) && pkg.mappers.has(name)) {
    seen.add(name);
    yield* mapperProperties(pkg, pkg.mappers.get(name), seen);
  }
}

// A type description the Bicep walker understands, from a .d.ts type node.
//   {kind:'object', model} | {kind:'array', of} | {kind:'map', of} | {kind:'enum', values, name}
//   | {kind:'string'|'number'|'boolean'} | {kind:'union', models: [...]} | {kind:'any'}
function describe(pkg, node) {
  if (!node) return { kind: 'any' };
  switch (node.kind) {
    case ts.SyntaxKind.StringKeyword: return { kind: 'string' };
    case ts.SyntaxKind.NumberKeyword: return { kind: 'number' };
    case ts.SyntaxKind.BooleanKeyword: return { kind: 'boolean' };
    case ts.SyntaxKind.ArrayType: return { kind: 'array', of: describe(pkg, node.elementType) };
    case ts.SyntaxKind.ParenthesizedType: return describe(pkg, node.type);
    case ts.SyntaxKind.LiteralType:
      if (ts.isStringLiteral(node.literal)) return { kind: 'enum', values: [node.literal.text] };
      return { kind: 'any' };
    case ts.SyntaxKind.UnionType: {
      const parts = node.types.map((t) => describe(pkg, t));
      if (parts.every((p) => p.kind === 'enum')) return { kind: 'enum', values: parts.flatMap((p) => p.values) };
      const models = parts.filter((p) => p.kind === 'object');
      if (models.length === parts.length) return { kind: 'union', models: models.map((m) => m.model) };
      if (parts.some((p) => p.kind === 'string')) return { kind: 'string' };
      return { kind: 'any' };
    }
    case ts.SyntaxKind.TypeReference: {
      const name = node.typeName.getText();
      const args = node.typeArguments ?? [];
      if (name === 'Record' && args.length === 2) return { kind: 'map', of: describe(pkg, args[1]) };
      if (name === 'Array' && args.length === 1) return { kind: 'array', of: describe(pkg, args[0]) };
      if (name === 'Date') return { kind: 'string' };
      if (pkg.interfaces.has(name)) return { kind: 'object', model: name };
      if (pkg.enums.has(name)) return { kind: 'enum', values: pkg.enums.get(name), name };
      const alias = pkg.aliases.get(name);
      if (alias) {
        const d = describe(pkg, alias.type);
        // Extensible enums: `type X = string` with `enum KnownX { ... }` beside it.
        if (d.kind === 'string' && pkg.enums.has(`Known${name}`)) return { kind: 'enum', values: pkg.enums.get(`Known${name}`), name };
        return d.kind === 'enum' ? { ...d, name } : d;
      }
      return { kind: 'any' };
    }
    default: return { kind: 'any' };
  }
}

// ---------------------------------------------------------------------------------------------
// Bicep

const findings = [];
const verbose = [];

function report(file, node, message) {
  findings.push({ file, row: node.startPosition.row, col: node.startPosition.column, message });
}

function unwrap(node) {
  while (node && node.type === 'parenthesized_expression') node = node.namedChild(0);
  return node;
}

function keyText(propNode) {
  const k = propNode.namedChild(0);
  if (k.type === 'identifier' || k.type === 'property_identifier') return k.text;
  if (k.type === 'string') {
    if (k.namedChildren.some((c) => c.type === 'interpolation')) return null;
    return stringValue(k);
  }
  return null;
}

function stringValue(node) {
  if (!node || node.type !== 'string') return null;
  if (node.namedChildren.some((c) => c.type === 'interpolation')) return null;
  return node.namedChildren.filter((c) => c.type === 'string_content' || c.type === 'escape_sequence')
    .map((c) => (c.type === 'escape_sequence' ? JSON.parse(`"${c.text.replace(/^\\'/, "'")}"`) : c.text)).join('');
}

function objectProperties(obj) {
  return obj.namedChildren.filter((c) => c.type === 'object_property');
}

function levenshtein(a, b) {
  a = a.toLowerCase(); b = b.toLowerCase();
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

function nearest(word, candidates) {
  let best = null, score = Infinity;
  for (const c of candidates) {
    const s = levenshtein(word, c);
    if (s < score) { best = c; score = s; }
  }
  return best;
}

// whereKnown looks for a key elsewhere in a model tree (at most four objects deep) and returns
// the paths where it is a member: that is how a key at the wrong depth is explained.
function whereKnown(pkg, modelName, key, path = [], depth = 0, seen = new Set(), out = []) {
  if (depth > 4 || seen.has(modelName) || out.length >= 3) return out;
  seen.add(modelName);
  const m = wireModel(pkg, modelName);
  if (!m) return out;
  const levels = [[m.top, path]];
  if (m.props) levels.push([m.props, [...path, 'properties']]);
  for (const [members, p] of levels) {
    for (const [wire, entry] of members) {
      if (wire.toLowerCase() === key.toLowerCase()) out.push([...p, wire].join('.'));
    }
  }
  for (const [members, p] of levels) {
    for (const [wire, entry] of members) {
      let d = describe(pkg, entry.type);
      while (d.kind === 'array' || d.kind === 'map') d = d.of;
      if (d.kind === 'object') whereKnown(pkg, d.model, key, [...p, wire], depth + 1, new Set(seen), out);
    }
  }
  return out;
}

class FileContext {
  constructor(file, tree) {
    this.file = file;
    this.vars = new Map();
    for (const st of tree.rootNode.namedChildren) {
      if (st.type === 'variable_declaration') {
        const [name, value] = [st.namedChild(0), st.namedChildren.at(-1)];
        if (name && value) this.vars.set(name.text, value);
      }
    }
  }
}

// checkValue checks one Bicep value against a type description.
function checkValue(ctx, pkg, node, type, path, seenVars = new Set()) {
  node = unwrap(node);
  if (!node || type.kind === 'any') return;
  switch (node.type) {
    case 'ternary_expression':
      checkValue(ctx, pkg, node.childForFieldName('consequence'), type, path, seenVars);
      checkValue(ctx, pkg, node.childForFieldName('alternative'), type, path, seenVars);
      return;
    case 'null':
      return;
    case 'call_expression': {
      // union(a, b, ...) merges objects: each argument must fit the same model.
      const fn = node.childForFieldName('function');
      if (fn?.text === 'union') {
        const args = node.childForFieldName('arguments');
        for (const a of args?.namedChildren ?? []) checkValue(ctx, pkg, a, type, path, seenVars);
      }
      return;
    }
    case 'identifier': {
      const v = ctx.vars.get(node.text);
      if (v && !seenVars.has(node.text)) checkValue(ctx, pkg, v, type, path, new Set([...seenVars, node.text]));
      return;
    }
    case 'for_statement':
      checkValue(ctx, pkg, node.childForFieldName('body'), type.kind === 'array' ? type.of : type, path, seenVars);
      return;
    case 'if_statement':
      checkValue(ctx, pkg, node.namedChildren.at(-1), type, path, seenVars);
      return;
  }
  const given = { object: 'an object', array: 'an array', string: 'a string', number: 'a number', boolean: 'a bool' }[literalKind(node)];
  switch (type.kind) {
    case 'object':
      if (node.type === 'object') return checkObject(ctx, pkg, node, wireModel(pkg, type.model), path);
      if (given) report(ctx.file, node, `${path}: ${type.model} is an object; given ${given}`);
      return;
    case 'union': {
      if (node.type !== 'object') return;
      return checkObject(ctx, pkg, node, pickVariant(ctx, pkg, node, type.models, path), path);
    }
    case 'array':
      if (node.type === 'array') {
        for (const el of node.namedChildren) checkValue(ctx, pkg, el, type.of, `${path}[]`, seenVars);
      } else if (given) report(ctx.file, node, `${path}: an array is expected; given ${given}`);
      return;
    case 'map':
      if (node.type === 'object') {
        for (const p of objectProperties(node)) checkValue(ctx, pkg, p.namedChildren.at(-1), type.of, `${path}.${keyText(p) ?? '*'}`, seenVars);
      } else if (given && given !== 'an object') report(ctx.file, node, `${path}: an object is expected; given ${given}`);
      return;
    case 'enum': {
      if (node.type !== 'string') {
        if (given) report(ctx.file, node, `${path}: a string (${type.values.join(', ')}) is expected; given ${given}`);
        return;
      }
      const v = stringValue(node);
      if (v === null || type.values.length === 0 || type.values.includes(v)) return;
      const ci = type.values.find((x) => x.toLowerCase() === v.toLowerCase());
      report(ctx.file, node, ci
        ? `${path}: '${v}' is not a value of ${type.name ?? 'this property'}: write '${ci}'`
        : `${path}: '${v}' is not a value of ${type.name ?? 'this property'} (${type.values.join(', ')}); nearest '${nearest(v, type.values)}'`);
      return;
    }
    case 'string': case 'number': case 'boolean': {
      const want = { string: 'a string', number: 'a number', boolean: 'a bool' }[type.kind];
      if (given && given !== want) report(ctx.file, node, `${path}: ${want} is expected; given ${given}`);
      return;
    }
  }
}

function literalKind(node) {
  switch (node.type) {
    case 'object': return 'object';
    case 'array': return 'array';
    case 'string': return 'string';
    case 'number': return 'number';
    case 'boolean': return 'boolean';
    case 'unary_expression': return /^-\s*\d/.test(node.text) ? 'number' : null;
    default: return null;
  }
}

// pickVariant chooses the member of a discriminated union whose literal-typed discriminator
// (odata.type, kind, ...) matches the object's value for it.
function pickVariant(ctx, pkg, obj, models, path) {
  const given = new Map(objectProperties(obj).map((p) => [keyText(p), stringValue(unwrap(p.namedChildren.at(-1)))]));
  let fallback = null;
  const discriminators = [];
  for (const name of models) {
    const m = wireModel(pkg, name);
    if (!m) continue;
    fallback ??= m;
    for (const [wire, e] of m.top) {
      const d = describe(pkg, e.type);
      if (d.kind === 'enum' && d.values.length === 1 && !d.name) {
        discriminators.push(`${wire}: '${d.values[0]}'`);
        if (given.get(wire) === d.values[0]) return m;
      }
    }
  }
  report(ctx.file, obj, `${path}: no variant matches; the discriminator must be one of ${discriminators.join(', ')}`);
  return null;
}

// checkObject checks the keys of a Bicep object against a wire model. At a resource's top level
// (resourceLevel) only ARM's envelope keys and Bicep's own may stand beside `properties`.
function checkObject(ctx, pkg, obj, model, path, resourceLevel = false, extra = null) {
  if (!model) return;
  for (const p of objectProperties(obj)) {
    const key = keyText(p);
    const value = p.namedChildren.at(-1);
    const keyNode = p.namedChild(0);
    if (key === null) continue;
    const here = path ? `${path}.${key}` : key;
    if (resourceLevel && BICEP_RESOURCE_KEYS.has(key)) continue;
    if (key === 'properties' && model.props) {
      const inner = unwrapToObjects(ctx, value);
      for (const o of inner) checkBag(ctx, pkg, o, model, here, extra);
      continue;
    }
    const entry = model.top.get(key);
    if (entry && (!resourceLevel || ENVELOPE.has(key))) {
      if (entry.readonly) report(ctx.file, keyNode, `${here}: read-only in ${model.name}; Azure ignores it`);
      checkValue(ctx, pkg, value, describe(pkg, entry.type), here);
      continue;
    }
    if (resourceLevel && extra?.top?.[key]) {
      checkValue(ctx, pkg, value, extra.top[key], here);
      continue;
    }
    if (model.props?.has(key)) {
      report(ctx.file, keyNode, `${here}: belongs under properties (${path ? path + '.' : ''}properties.${key})`);
      continue;
    }
    if (model.open) continue;
    unknownKey(ctx, pkg, keyNode, key, here, model, [...model.top.keys(), ...(model.props ? ['properties'] : [])]);
  }
}

function checkBag(ctx, pkg, obj, model, path, extra) {
  for (const p of objectProperties(obj)) {
    const key = keyText(p);
    if (key === null) continue;
    const keyNode = p.namedChild(0);
    const value = p.namedChildren.at(-1);
    const here = `${path}.${key}`;
    const entry = model.props.get(key);
    if (extra?.removed?.[key]) {
      report(ctx.file, keyNode, `${here}: removed from ${model.name} in API version ${extra.removed[key]} (${extra.source})`);
      continue;
    }
    if (entry) {
      if (entry.readonly) report(ctx.file, keyNode, `${here}: read-only in ${model.name}; Azure ignores it`);
      checkValue(ctx, pkg, value, describe(pkg, entry.type), here);
      continue;
    }
    if (extra?.properties?.[key]) {
      const x = extra.properties[key];
      checkValue(ctx, pkg, value, x.values ? { kind: 'enum', values: x.values, name: key } : { kind: x.kind ?? 'any' }, here);
      continue;
    }
    if (model.top.has(key) && key !== 'properties') {
      report(ctx.file, keyNode, `${here}: one level too deep; ${key} belongs beside properties, not in it`);
      continue;
    }
    if (model.open) continue;
    const known = [...model.props.keys(), ...Object.keys(extra?.properties ?? {})];
    unknownKey(ctx, pkg, keyNode, key, here, model, known);
  }
}

function unwrapToObjects(ctx, node, seen = new Set()) {
  node = unwrap(node);
  if (!node) return [];
  if (node.type === 'object') return [node];
  if (node.type === 'ternary_expression') {
    return [...unwrapToObjects(ctx, node.childForFieldName('consequence'), seen), ...unwrapToObjects(ctx, node.childForFieldName('alternative'), seen)];
  }
  if (node.type === 'call_expression' && node.childForFieldName('function')?.text === 'union') {
    return (node.childForFieldName('arguments')?.namedChildren ?? []).flatMap((a) => unwrapToObjects(ctx, a, seen));
  }
  if (node.type === 'identifier' && ctx.vars.has(node.text) && !seen.has(node.text)) {
    return unwrapToObjects(ctx, ctx.vars.get(node.text), new Set([...seen, node.text]));
  }
  return [];
}

function unknownKey(ctx, pkg, keyNode, key, here, model, candidates) {
  // Where else the resource's model knows this key: the usual cause of a key at the wrong depth.
  const elsewhere = whereKnown(pkg, ctx.root, key).filter((p) => p !== here);
  let msg = `${here}: unknown key in ${model.name}`;
  const near = nearest(key, candidates);
  if (near && levenshtein(key, near) <= Math.max(2, Math.floor(key.length / 3))) msg += `; nearest known name '${near}'`;
  if (elsewhere.length) msg += `; the resource has ${key} at ${elsewhere.join(', ')}`;
  report(ctx.file, keyNode, msg);
}

function apiOlder(a, b) {
  return a.replace(/-preview$/, '') < b.replace(/-preview$/, '');
}

function checkResource(ctx, decl) {
  const typeNode = decl.namedChild(1);
  const typeText = stringValue(typeNode);
  if (!typeText) return;
  const [type, api] = typeText.split('@');
  // An `existing` resource only names something deployed elsewhere: no body to check.
  const between = ctx.text.slice(typeNode.endIndex, decl.namedChild(2)?.startIndex ?? typeNode.endIndex);
  if (/\bexisting\b/.test(between)) return;
  let body = decl.namedChildren.at(-1);
  while (body && (body.type === 'for_statement' || body.type === 'if_statement')) {
    body = body.type === 'for_statement' ? body.childForFieldName('body') : body.namedChildren.at(-1);
  }
  body = unwrap(body);
  if (!body || body.type !== 'object') return;
  const spec = RESOURCE_MODELS[type];
  if (!spec) {
    report(ctx.file, typeNode, `${type}: no SDK model is mapped for this resource type; add it to RESOURCE_MODELS in infra/check-models.mjs`);
    return;
  }
  const pkg = loadPackage(spec.pkg);
  let modelName = spec.model;
  if (spec.byName) {
    const nameProp = objectProperties(body).find((p) => keyText(p) === 'name');
    const name = nameProp && stringValue(unwrap(nameProp.namedChildren.at(-1)));
    modelName = spec.byName[name];
    if (!modelName) {
      report(ctx.file, nameProp ?? typeNode, `${type} named '${name}': no SDK model is mapped for this name; known: ${Object.keys(spec.byName).join(', ')}`);
      return;
    }
  }
  const model = wireModel(pkg, modelName);
  if (!model) {
    report(ctx.file, typeNode, `${type}: ${spec.pkg} ${pkg.version} has no model ${modelName}`);
    return;
  }
  const note = apiOlder(spec.sdkApi, api)
    ? `older than the template's ${api}${spec.newer ? `; later keys from ${spec.newer.source}` : ''}`
    : (spec.sdkApi === api ? 'same version' : `newer than the template's ${api}: keys added since ${api} would not be flagged`);
  verbose.push(`${relative(process.cwd(), ctx.file)}:${decl.startPosition.row + 1}: ${type}@${api} checked with ${spec.pkg}@${pkg.version} ${modelName} (API ${spec.sdkApi}, ${note})`);
  if (apiOlder(spec.sdkApi, api) && !spec.newer) {
    report(ctx.file, typeNode, `${type}@${api}: ${spec.pkg} ${pkg.version} models ${spec.sdkApi}, an older version, and RESOURCE_MODELS lists no later keys`);
  }
  ctx.root = modelName;
  checkObject(ctx, pkg, body, model, '', true, spec.top ? { ...(spec.newer ?? {}), top: spec.top } : spec.newer);
}

// checkSdkVersions confirms each sdkApi of RESOURCE_MODELS appears in its package's code, so
// an upgraded package whose API version moved is noticed instead of silently described wrong.
function checkSdkVersions() {
  const problems = [];
  const byPkg = new Map();
  for (const [type, spec] of Object.entries(RESOURCE_MODELS)) {
    if (!byPkg.has(spec.pkg)) byPkg.set(spec.pkg, new Set());
    byPkg.get(spec.pkg).add(spec.sdkApi);
  }
  for (const [name, versions] of byPkg) {
    const pkg = loadPackage(name);
    const text = files(pkg.dir).filter((f) => f.endsWith('.js') && !f.endsWith('.map')).map((f) => readFileSync(f, 'utf8')).join('\n');
    for (const v of versions) {
      if (!text.includes(`"${v}"`) && !text.includes(`'${v}'`)) problems.push(`check-models: ${name} ${pkg.version} does not use API version ${v} any more; update RESOURCE_MODELS`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

const args = process.argv.slice(2);
const showVerbose = args.includes('--verbose');
const paths = args.filter((a) => a !== '--verbose');


const targets = bicepFiles('check-models', paths, here, ['.bicep']);

const grammar = join(root, 'node_modules', 'tree-sitter-bicep', 'tree-sitter-bicep.wasm');
await Parser.init();
const parser = new Parser();
parser.setLanguage(await Language.load(grammar));

const versionProblems = checkSdkVersions();
let resources = 0;
for (const file of targets) {
  const text = readFileSync(file, 'utf8');
  const tree = parser.parse(text);
  const ctx = new FileContext(file, tree);
  ctx.text = text;
  for (const st of tree.rootNode.namedChildren) {
    if (st.type === 'resource_declaration') {
      resources++;
      checkResource(ctx, st);
    }
  }
  tree.delete();
}

if (showVerbose) {
  for (const v of verbose) console.log(v);
  for (const u of [...unmapped].sort()) console.log(`note: ${u} has no serializer or mapper; checked by its client names`);
}
for (const p of versionProblems) console.log(p);
findings.sort((a, b) => a.file.localeCompare(b.file) || a.row - b.row || a.col - b.col);
for (const f of findings) console.log(`${relative(process.cwd(), f.file) || f.file}:${f.row + 1}:${f.col + 1}: ${f.message}`);
if (findings.length || versionProblems.length) {
  console.log(`check-models: ${findings.length} finding(s) in ${resources} resource(s) of ${targets.length} file(s)`);
  process.exit(1);
}
console.log(`check-models: ${resources} resource(s) in ${targets.length} file(s) match the SDK models`);
