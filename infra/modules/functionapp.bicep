// The Function App that runs dvrouter as a custom handler, on Linux, in a Flex Consumption plan
// (default) or an Elastic Premium plan. Every connection uses the one user-assigned identity:
// host storage, the Service Bus trigger and dvrouter's own enqueue, the failure table,
// Application Insights and the vault's secrets. No setting holds a key or a connection
// string with a key in it.

@description('Azure region.')
param location string

@description('Function App name (also its host name).')
param name string

@description('Hosting plan name.')
param planName string

@description('flex: Flex Consumption (FC1). premium: Elastic Premium.')
@allowed([
  'flex'
  'premium'
])
param hostingPlan string = 'flex'

@description('Elastic Premium size, used when hostingPlan is premium.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param premiumSku string = 'EP1'

@description('Elastic Premium: most instances the plan bursts to.')
@minValue(1)
@maxValue(100)
param premiumMaximumElasticWorkerCount int = 20

// Flex Consumption's lowest maximum is 40 and its highest 1000 ("Considerations",
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan).
@description('Flex Consumption: most instances the app scales out to (40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption: the language runtime stack. dvrouter is a custom handler: custom.')
param flexRuntimeName string = 'custom'

@description('Flex Consumption: the runtime version; see az functionapp list-flexconsumption-runtimes --location <region> --runtime custom.')
param flexRuntimeVersion string = '1.0'

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('Storage account for host storage and the failure table.')
param storageAccountName string

@description('Blob container Flex Consumption deploys to.')
param deploymentContainerName string

@description('Blob container the Elastic Premium plan runs the package from.')
param packageContainerName string

@description('Table that keeps failed deliveries.')
param failuresTableName string

@description('Service Bus namespace host name (<name>.servicebus.windows.net).')
param serviceBusFullyQualifiedNamespace string

@description('Ingress queue name.')
param queueName string

@description('Key Vault holding the webhook keys, admin keys and consumer secrets.')
param keyVaultName string

@description('URI of that vault (https://<name>.vault.azure.net/).')
param keyVaultUri string

@description('Application Insights connection string.')
param appInsightsConnectionString string

@description('Dataverse organization ids (GUIDs), comma-separated; empty accepts every organization.')
param allowedOrganizationIds string = ''

@description('Dataverse environments dvrouter reads rows from (size-exceeded events, routes with fetch): <organization id or host>=https://<org>.crm.dynamics.com;... Empty: none. The identity needs an application user in each environment (docs/webapi.md).')
param dataverseEnvironments string = ''

@description('App settings the routes file names as %SETTING%; each becomes a Key Vault reference to the secret of the same name with _ as - (ERP_API_KEY -> ERP-API-KEY).')
param consumerSecrets array = []

@description('Require the x-dvrouter-key header on the webhook, with keys from the vault secret dvrouter-webhook-keys, on top of the function key.')
param requireWebhookHeaderKey bool = true

@description('dvrouter log level.')
@allowed([
  'debug'
  'info'
  'warn'
  'error'
])
param logLevel string = 'info'

@description('App Service authentication (auth.bicep) is in front: dvrouter trusts the x-ms-client-principal headers (DVROUTER_APPSERVICE_AUTH).')
param appServiceAuth bool = false

@description('DVROUTER_FAILURE_RETENTION: how long failures are kept after they were first kept.')
param failureRetention string = '30d'

@description('DVROUTER_RESOLVED_RETENTION: how long replayed and discarded failures are kept after they were resolved.')
param resolvedRetention string = '30d'

@description('The Dataverse environment change tracking reads (DVROUTER_CHANGES_ENVIRONMENT, https://contoso.crm4.dynamics.com); empty turns it off.')
param changesEnvironment string = ''

@description('NCRONTAB schedule of the ChangeTracking timer (DVROUTER_CHANGES_SCHEDULE).')
param changesSchedule string = '0 */5 * * * *'

@description('How long a table may go without a read before it counts as stale (DVROUTER_CHANGES_STALE_AFTER).')
param changesStaleAfter string = '15m'

@description('Subnet the app integrates with; empty for no virtual network integration.')
param integrationSubnetId string = ''

param tags object = {}

var isFlex = hostingPlan == 'flex'
var integrated = !empty(integrationSubnetId)
// With private networking the vault refuses public traffic, and Flex Consumption could not
// resolve Key Vault references from such a vault ("Considerations" on
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan). dvrouter then reads
// its secrets itself, over the vault's private endpoint, with the app's identity (Key Vault
// Secrets User, keyvault.bicep), on both plans alike: DVROUTER_KEYVAULT_* below. Without
// private networking the settings stay Key Vault references that App Service resolves.
var secretsReadByApp = integrated
var webhookKeysSecret = 'dvrouter-webhook-keys'
var adminKeysSecret = 'dvrouter-admin-keys'
var storageSuffix = environment().suffixes.storage
var blobEndpoint = 'https://${storageAccountName}.blob.${storageSuffix}'

// Settings dvrouter and the Functions host read, the same on both plans. The names match
// local.settings.sample.json and pkg/config; infra_test.go checks that none is missing.
var appSettings = {
  // Host storage, by identity (AzureWebJobsStorage as __accountName, no connection string).
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // Service Bus: the DataverseQueue trigger and dvrouter's own enqueue (queued mode is on
  // because this is set).
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId
  // azidentity's DefaultAzureCredential picks the user-assigned identity by this, for
  // `servicebus` consumers that name a namespace.
  AZURE_CLIENT_ID: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  DVROUTER_QUEUE: queueName
  // The routes file ships in the package at the app root. Flex starts the handler in the app
  // root; Elastic Premium mounts the package at /home/site/wwwroot.
  DVROUTER_ROUTES: isFlex ? 'routes.yaml' : '/home/site/wwwroot/routes.yaml'
  DVROUTER_TABLES__tableServiceUri: 'https://${storageAccountName}.table.${storageSuffix}'
  DVROUTER_TABLES__clientId: identityClientId
  DVROUTER_FAILURES_TABLE: failuresTableName
  // The consumers' circuit breakers, shared by every instance (created by dvrouter on first use).
  DVROUTER_BREAKER_TABLE: 'ConsumerBreakers'
  DVROUTER_BREAKER_SYNC: '1s'
  // The delivery journal (history lookups), created by dvrouter on first use; ids and timings only.
  DVROUTER_JOURNAL_TABLE: 'DeliveryJournal'
  DVROUTER_JOURNAL_RETENTION: '30d'
  // One "consumer metrics" line per consumer per interval: the workbook charts them.
  DVROUTER_METRICS_INTERVAL: '1m'
  // Empty when dvrouter reads them from the vault itself (vaultSettings).
  DVROUTER_WEBHOOK_KEYS: requireWebhookHeaderKey && !secretsReadByApp ? '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${webhookKeysSecret})' : ''
  DVROUTER_ADMIN_KEYS: secretsReadByApp ? '' : '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${adminKeysSecret})'
  DVROUTER_ALLOWED_ORGS: allowedOrganizationIds
  // The Dataverse Web API, read as the app's identity (an application user in each environment).
  DVROUTER_DATAVERSE_ENVIRONMENTS: dataverseEnvironments
  DVROUTER_DATAVERSE_CLIENT_ID: identityClientId
  DVROUTER_DATAVERSE_CONCURRENCY: '8'
  DVROUTER_MAX_BODY: '1048576'
  DVROUTER_DELIVERY_BUDGET: '20s'
  DVROUTER_LOG_LEVEL: logLevel
  DVROUTER_APPSERVICE_AUTH: appServiceAuth ? 'true' : 'false'
  DVROUTER_FAILURE_RETENTION: failureRetention
  DVROUTER_RESOLVED_RETENTION: resolvedRetention
  // Change tracking, the second source (docs/changes.md): off while the environment is empty.
  // The ChangeTracking timer names the schedule as %DVROUTER_CHANGES_SCHEDULE%, so it is always set.
  DVROUTER_CHANGES_ENVIRONMENT: changesEnvironment
  DVROUTER_CHANGES_CLIENT_ID: identityClientId
  DVROUTER_CHANGES_SCHEDULE: changesSchedule
  DVROUTER_CHANGES_STALE_AFTER: changesStaleAfter
  DVROUTER_CHANGES_TABLE: 'ChangeTracking'
  DVROUTER_CHANGES_PAGE_SIZE: '1000'
}

// Elastic Premium only. Flex Consumption takes the runtime from functionAppConfig and refuses
// these. The package runs from a private blob read with the app's identity, which is what lets
// Elastic Premium run without an Azure Files content share (that share needs an account key).
var premiumSettings = {
  FUNCTIONS_EXTENSION_VERSION: '~4'
  FUNCTIONS_WORKER_RUNTIME: 'custom'
  WEBSITE_RUN_FROM_PACKAGE: '${blobEndpoint}/${packageContainerName}/dvrouter.zip'
  WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID: identityId
}

var consumerSecretSettings = secretsReadByApp ? {} : toObject(consumerSecrets, setting => setting, setting => '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${replace(setting, '_', '-')})')

// The settings dvrouter reads from the vault itself (pkg/config, DVROUTER_KEYVAULT_*): each
// SETTING=secret-name, read at start-up and re-read hourly; a rotated secret is applied
// without a restart.
var vaultSecretList = concat(
  requireWebhookHeaderKey ? [
    'DVROUTER_WEBHOOK_KEYS=${webhookKeysSecret}'
  ] : [],
  [
    'DVROUTER_ADMIN_KEYS=${adminKeysSecret}'
  ],
  map(consumerSecrets, setting => '${setting}=${replace(setting, '_', '-')}')
)
var vaultSettings = {
  DVROUTER_KEYVAULT_URI: keyVaultUri
  DVROUTER_KEYVAULT_CLIENT_ID: identityClientId
  DVROUTER_KEYVAULT_SECRETS: join(vaultSecretList, ',')
  DVROUTER_KEYVAULT_REFRESH: '1h'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: isFlex ? 'functionapp' : 'elastic'
  sku: isFlex ? {
    name: 'FC1'
    tier: 'FlexConsumption'
  } : {
    name: premiumSku
    tier: 'ElasticPremium'
  }
  properties: isFlex ? {
    reserved: true
  } : {
    reserved: true
    maximumElasticWorkerCount: premiumMaximumElasticWorkerCount
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    virtualNetworkSubnetId: integrated ? integrationSubnetId : null
    functionAppConfig: isFlex ? {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}/${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: flexRuntimeName
        version: flexRuntimeVersion
      }
    } : null
    siteConfig: union({
      minTlsVersion: '1.2'
    }, isFlex ? {} : {
      // Elastic Premium only: Flex Consumption does not use these site settings (it deploys
      // through its deployment container, routes outbound traffic through the virtual
      // network it integrates with, and scales per function by itself).
      ftpsState: 'Disabled'
      // Send all outbound traffic through the virtual network when integrated, and let the
      // runtime report scale needs, since the scale controller cannot reach a private
      // Service Bus namespace.
      vnetRouteAllEnabled: integrated
      functionsRuntimeScaleMonitoringEnabled: integrated
    })
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(appSettings, isFlex ? {} : premiumSettings, consumerSecretSettings, secretsReadByApp ? vaultSettings : {})
}

// No publishing with user names and passwords: deployments authenticate with Entra ID.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
