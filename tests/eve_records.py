"""EVE records for tests: an alert and a flow event as Suricata writes them
(``ALERT % (flow_id, signature_id, n)``, ``FLOW % flow_id``)."""

ALERT = (b'{"timestamp":"2025-11-27T18:03:50.123456+0000","flow_id":%d,"event_type":"alert",'
         b'"src_ip":"10.0.0.1","src_port":1234,"dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP",'
         b'"alert":{"action":"allowed","gid":1,"signature_id":%d,"rev":1,"signature":"sig %d",'
         b'"category":"Misc","severity":2}}')
FLOW = (b'{"timestamp":"2025-11-27T18:03:50.000000+0000","flow_id":%d,"event_type":"flow","src_ip":"10.0.0.1",'
        b'"src_port":1234,"dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP","app_proto":"http",'
        b'"flow":{"pkts_toserver":3,"pkts_toclient":4,"bytes_toserver":300,"bytes_toclient":400,'
        b'"start":"2025-11-27T18:03:49.000000+0000","end":"2025-11-27T18:03:50.000000+0000",'
        b'"state":"closed","reason":"timeout","alerted":true}}')
