// App Service authentication (Easy Auth) with Microsoft Entra ID in front of the Function App:
// the console and the support API (/api/console, /api/failures, /api/me) need a signed-in user
// or an access token for the app registration; the Dataverse webhook, the queue and timer
// invocations and the health probe stay outside it (they have their own keys, or none).
//
// dvrouter reads who is signed in from the x-ms-client-principal header the platform sets, and
// the user's app roles (reader, operator) from its "roles" claims; main.bicep sets
// DVROUTER_APPSERVICE_AUTH=true whenever this module is deployed, and only then, because without
// the platform in front those headers are whatever a caller sent.
// https://learn.microsoft.com/azure/app-service/configure-authentication-provider-aad
// https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities

@description('Function App name.')
param siteName string

@description('Application (client) id of the app registration that defines the reader and operator app roles (see infra/README.md).')
param clientId string

@description('Directory (tenant) id of the app registration.')
param tenantId string = tenant().tenantId

@description('Paths that need no sign-in: the webhook (function key and x-dvrouter-key), the Functions host\'s invocations of the queue and timer functions, and the health probe.')
param excludedPaths array = [
  '/api/dataverse/webhook'
  '/api/health'
  '/DataverseQueue'
  '/Retention'
  '/ChangeTracking'
]

@description('How long a sign-in lasts (hh:mm:ss) before the user signs in again.')
param sessionLifetime string = '08:00:00'

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      // A browser opening the console is sent to the Entra ID sign-in page; API clients send a
      // bearer token for the registration (az account get-access-token --resource api://<clientId>).
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      excludedPaths: excludedPaths
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenantId}/v2.0'
          // No client secret: users sign in with the OpenID Connect implicit flow (ID tokens),
          // so no secret has to be kept or rotated for sign-in.
          clientId: clientId
        }
        validation: {
          allowedAudiences: [
            'api://${clientId}'
            clientId
          ]
        }
      }
    }
    login: {
      // dvrouter needs the identity only, never the user's tokens: keep none.
      tokenStore: {
        enabled: false
      }
      cookieExpiration: {
        convention: 'FixedTime'
        timeToExpiration: sessionLifetime
      }
    }
    httpSettings: {
      requireHttps: true
    }
  }
}
