-- How a provider's webhooks are verified: its kind, secret's variable and SNS topics.
SELECT kind::text, webhook_secret_env, sns_topics FROM postrunner.providers WHERE name = $1
