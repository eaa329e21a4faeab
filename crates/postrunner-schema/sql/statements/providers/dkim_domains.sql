-- The sender domains postrunner signs for itself, with where their keys come from.
SELECT domain, selector, algorithm, key_env, key_file
  FROM postrunner.sender_domains
 WHERE signer = 'postrunner'
