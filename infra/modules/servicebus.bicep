// The Service Bus namespace and the ingress queue dvrouter reads (dataverse-events). Local
// (SAS) authentication is off: only Entra identities with a data role can send or receive, and
// the app's identity gets Receiver and Sender on this one queue, not on the namespace.

@description('Azure region.')
param location string

@description('Namespace name: 6 to 50 letters, digits and hyphens.')
@minLength(6)
@maxLength(50)
param name string

@description('Standard, or Premium (required for private endpoints).')
@allowed([
  'Standard'
  'Premium'
])
param skuName string = 'Standard'

@description('Queue the webhook enqueues to and the DataverseQueue function reads.')
param queueName string

@description('Principal id of the user-assigned identity the Function App uses.')
param principalId string

// The Service Bus trigger needs Azure Service Bus Data Receiver, or Data Owner
// (https://learn.microsoft.com/azure/azure-functions/functions-bindings-service-bus-trigger#identity-based-connections).
// Receiver is the least privilege; Owner also lets the platform read the queue's message count,
// which target-based scaling uses (see infra/README.md, "The Service Bus trigger's rights").
@description('Role of the app on the queue for the trigger: Receiver (least privilege) or Owner (target-based scaling can read the queue length).')
@allowed([
  'Receiver'
  'Owner'
])
param triggerRole string = 'Receiver'

@description('Refuse traffic from public networks; reachable only through private endpoints (Premium only).')
param privateOnly bool = false

param tags object = {}

var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var serviceBusDataOwner = '090c5cfd-751d-490a-894a-3ce6f1109419'
var premium = skuName == 'Premium'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: premium ? {
    name: 'Premium'
    tier: 'Premium'
    capacity: 1
  } : {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: union({
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: privateOnly ? 'Disabled' : 'Enabled'
  }, premium ? {
    premiumMessagingPartitions: 1
  } : {})
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: queueName
  properties: {
    // dvrouter spends at most DVROUTER_DELIVERY_BUDGET (20 s) on a message before it answers;
    // a one-minute lock covers that with room for recording failures, and the host renews it.
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    // The webhook sets MessageId to the event id, so a Dataverse retry of the same event
    // within ten minutes is dropped by the broker.
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
    maxSizeInMegabytes: 1024
    requiresSession: false
    enablePartitioning: false
    enableBatchedOperations: true
  }
}

// The DataverseQueue trigger receives from the queue.
resource receiverRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (triggerRole == 'Receiver') {
  name: guid(queue.id, principalId, serviceBusDataReceiver)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The webhook enqueues to the queue (queued mode).
resource senderRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, principalId, serviceBusDataSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// The same, with the rights target-based scaling reads the queue length with.
resource ownerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (triggerRole == 'Owner') {
  name: guid(queue.id, principalId, serviceBusDataOwner)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', serviceBusDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = namespace.name
output id string = namespace.id
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output queueName string = queue.name
