// Key Vault for the webhook keys, the admin keys and the consumers' secrets. Access is by Azure
// RBAC only (no access policies): the app's identity can read secrets, the principals listed
// in secretsOfficerPrincipalIds can write them, and nobody else gets a data role here.

@description('Azure region.')
param location string

@description('Vault name: 3 to 24 letters, digits and hyphens.')
@minLength(3)
@maxLength(24)
param name string

@description('Principal id of the user-assigned identity the Function App uses.')
param principalId string

@description('Principal ids (users or groups) allowed to set secrets, e.g. the devops group.')
param secretsOfficerPrincipalIds array = []

@description('Principal type of secretsOfficerPrincipalIds entries.')
@allowed([
  'Group'
  'User'
  'ServicePrincipal'
])
param secretsOfficerPrincipalType string = 'Group'

@description('Purge protection; it cannot be turned off again once on.')
param enablePurgeProtection bool = true

@description('Refuse traffic from public networks; reachable only through private endpoints.')
param privateOnly bool = false

param tags object = {}

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // The API refuses `false`; leaving it out is how purge protection stays off.
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: privateOnly ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: privateOnly ? 'Deny' : 'Allow'
    }
  }
}

// Key Vault references in the app settings resolve with the app's identity.
resource secretsUserRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsOfficerRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for officer in secretsOfficerPrincipalIds: {
  name: guid(vault.id, officer, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: officer
    principalType: secretsOfficerPrincipalType
  }
}]

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
