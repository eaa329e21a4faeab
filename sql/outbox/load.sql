-- The message an email.send job carries.
SELECT id, client, direction, to_address, subject, text_body, html_body, headers, metadata
  FROM postrunner.outbox
 WHERE job_id = $1
